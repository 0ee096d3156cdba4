//! The epoch a build uses (SOURCE_DATE_EPOCH): from the build arg, the
//! recipe or the base image, never the wall clock. Pure.

use crate::recipe::Recipe;

/// No epoch to build with, or a bad one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    #[error("build arg SOURCE_DATE_EPOCH=\"{0}\" is not a whole number of seconds since 1970")]
    BuildArg(String),
    /// The recipe (named) has no epoch and the base image no `created` time.
    #[error(
        "{0}: no epoch: the base image has no \"created\" time; set epoch: in the recipe or --build-arg SOURCE_DATE_EPOCH=<seconds>"
    )]
    None(String),
}

/// Picks the epoch: the SOURCE_DATE_EPOCH build arg, else the recipe's
/// `epoch:`, else the base image's `created` time. Never the wall clock.
pub fn choose_epoch(
    build_arg: Option<&str>,
    recipe: &Recipe,
    base_created: Option<i64>,
) -> Result<i64, EpochError> {
    if let Some(v) = build_arg.filter(|v| !v.is_empty()) {
        return v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| EpochError::BuildArg(v.to_string()));
    }
    match (&recipe.epoch, base_created) {
        (Some(e), _) => Ok(e.value),
        (None, Some(created)) => Ok(created),
        (None, None) => Err(EpochError::None(recipe.file.clone())),
    }
}
