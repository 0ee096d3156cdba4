//! An error at a place in a file the build reads: the file's name, the
//! 1-based line and column, and the message, shown as
//! `repro.yaml:12:5: message` (the house style). The conversion and the
//! input pipeline make them; `frontend::errors` reads the place back as data
//! (as it does `recipe::RecipeError`'s and `lockfile::LockError`'s) to send
//! the file's lines with the failure. Pure.

/// An error positioned in a file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Located {
    /// The error `message` at `line`:`col` of `file`.
    pub fn new(file: &str, (line, col): (usize, usize), message: impl ToString) -> Located {
        Located {
            file: file.to_string(),
            line,
            col,
            message: message.to_string(),
        }
    }
}
