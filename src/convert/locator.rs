//! Where in the recipe each op comes from: the recipe's text as the
//! Definition's source file and the lines of the item behind an op. Pure.

use std::sync::Arc;

use crate::llb::{Location, SourceFile};
use crate::recipe::Recipe;
use crate::recipe::yaml::Span;

/// Source locations in the recipe, for the ops it causes.
pub(super) struct Locator {
    file: Option<Arc<SourceFile>>,
}

impl Locator {
    pub(super) fn new(recipe: &Recipe) -> Locator {
        // A recipe made in code rather than parsed has no text to point into.
        let file = (!recipe.text.is_empty()).then(|| {
            Arc::new(SourceFile {
                filename: recipe.file.clone(),
                data: recipe.text.as_bytes().to_vec(),
                language: "yaml".into(),
            })
        });
        Locator { file }
    }

    /// The lines of the recipe item that starts at `span`.
    pub(super) fn span(&self, span: Span) -> Option<Location> {
        let file = self.file.as_ref()?;
        let text = std::str::from_utf8(&file.data).ok()?;
        let (start, end) = crate::recipe::item_lines(text, span);
        Some(Location {
            file: file.clone(),
            start,
            end,
        })
    }
}
