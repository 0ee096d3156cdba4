//! Failures as BuildKit wants them back: a gRPC status whose details carry
//! the recipe (or lockfile) lines the error is about, so `docker buildx` and
//! `buildctl` print the snippet with the line marked, as they do for the
//! Dockerfile frontend's errors. Pure: no I/O.
//!
//! An error that names a place carries it as data: `located::Located`, the
//! recipe parser's `RecipeError` and the lockfile parser's `LockError`. The
//! first error in the chain that is one of them, with a file this build
//! read, gets that file's bytes and the line as an `errdefs.Source` detail
//! (BuildKit's solver/errdefs/errdefs.proto). The message is not read back.

use bollard_buildkit_proto::google::protobuf::Any;
use bollard_buildkit_proto::google::rpc::Status;
use bollard_buildkit_proto::pb;
use prost::Message;

use crate::llb::sourcemap;
use crate::located::Located;
use crate::lockfile::LockError;
use crate::recipe::RecipeError;

/// BuildKit's `errdefs.Source` message: a file and ranges in it. The bare
/// type name is what every BuildKit since v0.8 writes and reads as the
/// detail's type URL.
#[derive(Clone, PartialEq, Message)]
pub struct ErrorSource {
    #[prost(message, optional, tag = "1")]
    pub info: Option<pb::SourceInfo>,
    #[prost(message, repeated, tag = "2")]
    pub ranges: Vec<pb::Range>,
}

pub const ERROR_SOURCE_TYPE: &str = "errdefs.Source";

/// A file the build read, by the name errors use for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFile {
    pub name: String,
    pub data: Vec<u8>,
    /// How BuildKit's clients may highlight it ("yaml" for the recipe).
    pub language: String,
}

/// The status a failed build returns: the whole message, and the place it
/// names as a source detail when that place is in a file the build read.
pub fn status(e: &anyhow::Error, files: &[ReadFile]) -> Status {
    let details = e
        .chain()
        .find_map(|cause| locate(place(cause)?, files))
        .map(|(file, line)| Any {
            type_url: ERROR_SOURCE_TYPE.into(),
            value: ErrorSource {
                info: Some(pb::SourceInfo {
                    filename: file.name.clone(),
                    data: file.data.clone(),
                    definition: None,
                    language: file.language.clone(),
                }),
                ranges: vec![sourcemap::range(line, line)],
            }
            .encode_to_vec(),
        })
        .into_iter()
        .collect();
    Status {
        // UNKNOWN: BuildKit shows the message as is.
        code: 2,
        message: format!("{e:#}"),
        details,
    }
}

/// The file and line an error names, read off its type.
fn place<'e>(cause: &'e (dyn std::error::Error + 'static)) -> Option<(&'e str, usize)> {
    if let Some(e) = cause.downcast_ref::<Located>() {
        return Some((&e.file, e.line));
    }
    if let Some(e) = cause.downcast_ref::<RecipeError>() {
        return Some((&e.file, e.span.line));
    }
    cause
        .downcast_ref::<LockError>()
        .map(|e| (e.file.as_str(), e.line))
}

/// The file the build read under that name, and the line, when the file
/// has it.
fn locate<'f>((name, line): (&str, usize), files: &'f [ReadFile]) -> Option<(&'f ReadFile, usize)> {
    files.iter().find_map(|f| {
        let lines = f.data.split(|b| *b == b'\n').count();
        (f.name == name && line >= 1 && line <= lines).then_some((f, line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> ReadFile {
        ReadFile {
            name: "repro.yaml".into(),
            data: b"base: x\npackages:\n  sums: S\n".to_vec(),
            language: "yaml".into(),
        }
    }

    fn detail(s: &Status) -> ErrorSource {
        assert_eq!(s.details.len(), 1, "{s:?}");
        assert_eq!(s.details[0].type_url, "errdefs.Source");
        ErrorSource::decode(s.details[0].value.as_slice()).unwrap()
    }

    #[test]
    fn an_error_naming_a_recipe_line_carries_the_recipe() {
        let e = anyhow::Error::from(Located::new(
            "repro.yaml",
            (3, 9),
            "cannot read the lockfile \"S\"",
        ));
        let s = status(&e, &[recipe()]);
        assert_eq!(s.message, "repro.yaml:3:9: cannot read the lockfile \"S\"");
        let d = detail(&s);
        let info = d.info.unwrap();
        assert_eq!(
            (info.filename.as_str(), info.language.as_str()),
            ("repro.yaml", "yaml")
        );
        assert_eq!(info.data, recipe().data);
        assert_eq!(d.ranges[0].start.unwrap().line, 3);
        assert_eq!(d.ranges[0].end.unwrap().line, 3);
    }

    #[test]
    fn the_place_may_be_in_a_cause_and_a_lockfile_counts_too() {
        let lock = ReadFile {
            name: "SHA256SUMS-amd64".into(),
            data: b"a\nb\n".to_vec(),
            language: String::new(),
        };
        let bad = LockError {
            file: "SHA256SUMS-amd64".into(),
            line: 2,
            col: 1,
            message: "bad line".into(),
        };
        let e = anyhow::Error::from(bad).context("load the lockfile");
        let d = detail(&status(&e, &[recipe(), lock]));
        assert_eq!(d.info.unwrap().filename, "SHA256SUMS-amd64");
        assert_eq!(d.ranges[0].start.unwrap().line, 2);
    }

    #[test]
    fn no_detail_without_a_known_file_and_line() {
        for m in [
            "cannot resolve base image",
            "repro.yaml: no line",
            // A place in the text only is not read back.
            "repro.yaml:2:1: only text",
        ] {
            let s = status(&anyhow::anyhow!("{m}"), &[recipe()]);
            assert!(s.details.is_empty(), "{m}: {s:?}");
        }
        for (file, line) in [("other.yaml", 1), ("repro.yaml", 99), ("repro.yaml", 0)] {
            let e = anyhow::Error::from(Located::new(file, (line, 1), "not here"));
            let s = status(&e, &[recipe()]);
            assert!(s.details.is_empty(), "{file}:{line}: {s:?}");
        }
    }

    #[test]
    fn the_recipe_parsers_error_carries_its_place() {
        let e = crate::recipe::parse("repro.yaml", "base: x\npackages:\n  nope: 1\n").unwrap_err();
        let d = detail(&status(&anyhow::Error::from(e), &[recipe()]));
        assert_eq!(d.ranges[0].start.unwrap().line, 3);
    }
}
