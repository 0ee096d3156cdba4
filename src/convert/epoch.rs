//! The epoch a build uses (SOURCE_DATE_EPOCH): from the build arg, the
//! recipe or the base image, never the wall clock. Pure.

use crate::recipe::{Recipe, epoch_in_range as in_range};

/// No epoch to build with, or a bad one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    #[error(
        "build arg SOURCE_DATE_EPOCH=\"{0}\" is not a whole number of seconds from 1970 to the end of 9999"
    )]
    BuildArg(String),
    /// The base image's `created` time lies before 1970 or after 9999: no
    /// file time or image time can carry it.
    #[error(
        "{file}: the base image's config says it was created {created} seconds from 1970, which no epoch can be (before 1970 or after 9999); set epoch: in the recipe or --build-arg SOURCE_DATE_EPOCH=<seconds>"
    )]
    BaseCreated { file: String, created: i64 },
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
            .filter(|n| in_range(*n))
            .ok_or_else(|| EpochError::BuildArg(v.to_string()));
    }
    match (&recipe.epoch, base_created) {
        (Some(e), _) => Ok(e.value),
        (None, Some(created)) if in_range(created) => Ok(created),
        (None, Some(created)) => Err(EpochError::BaseCreated {
            file: recipe.file.clone(),
            created,
        }),
        (None, None) => Err(EpochError::None(recipe.file.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::MAX_EPOCH;

    fn recipe(text: &str) -> Recipe {
        crate::recipe::parse("repro.yaml", text).unwrap()
    }

    // A base created at 0001-01-01T00:00:00Z gave a negative epoch that
    // broke normalize's arguments (issue 24).
    #[test]
    fn a_base_created_before_1970_or_after_9999_is_refused_naming_where_it_came_from() {
        let r = recipe("base: x\n");
        for created in [-62_135_596_800, -1, MAX_EPOCH + 1] {
            let e = choose_epoch(None, &r, Some(created))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("repro.yaml: the base image's config says"),
                "{e}"
            );
            assert!(e.contains(&created.to_string()), "{e}");
        }
        assert_eq!(choose_epoch(None, &r, Some(0)), Ok(0));
        assert_eq!(choose_epoch(None, &r, Some(MAX_EPOCH)), Ok(MAX_EPOCH));
        // The recipe's or the build arg's epoch stands in for it.
        let with = recipe("base: x\nepoch: 1700000000\n");
        assert_eq!(choose_epoch(None, &with, Some(-1)), Ok(1_700_000_000));
        assert_eq!(choose_epoch(Some("5"), &r, Some(-1)), Ok(5));
    }

    #[test]
    fn a_build_arg_past_9999_is_refused() {
        let r = recipe("base: x\n");
        let big = (MAX_EPOCH + 1).to_string();
        assert_eq!(
            choose_epoch(Some(&big), &r, Some(1)),
            Err(EpochError::BuildArg(big.clone()))
        );
        assert!(choose_epoch(Some("-5"), &r, Some(1)).is_err());
    }
}
