//! Source maps: which lines of which file an op came from, so BuildKit can
//! show the recipe lines of a failing op (mirrors client/llb/sourcemap.go).
//! Pure: no I/O.
//!
//! An op carries [`Location`]s; marshalling gathers the files they point into
//! as `Definition.source.infos` (in the order the walk first meets them) and
//! each op's ranges under its digest. The map sits beside the ops, not in
//! them: op digests, and so the cache and the image, do not change.

use std::collections::BTreeMap;
use std::sync::Arc;

use bollard_buildkit_proto::pb;

/// A file a build was made from (the recipe), as BuildKit shows it.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub filename: String,
    pub data: Vec<u8>,
    /// The language BuildKit's clients may highlight the snippet as.
    pub language: String,
}

/// A range of whole lines (1-based, inclusive) of one source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<SourceFile>,
    pub start: usize,
    pub end: usize,
}

impl Location {
    pub fn range(&self) -> pb::Range {
        range(self.start, self.end)
    }
}

/// A `pb.Range` of whole lines; BuildKit prints lines, not columns.
pub fn range(start: usize, end: usize) -> pb::Range {
    let line = |n: usize| pb::Position {
        line: i32::try_from(n).unwrap_or(i32::MAX),
        character: 0,
    };
    pb::Range {
        start: Some(line(start)),
        end: Some(line(end.max(start))),
    }
}

/// The `Definition.source` of ops visited in marshal order (digest and the
/// op's locations); `None` when no op has one.
pub fn collect<'a>(ops: impl IntoIterator<Item = (&'a str, &'a [Location])>) -> Option<pb::Source> {
    let mut files: Vec<&Arc<SourceFile>> = Vec::new();
    let mut locations = BTreeMap::new();
    for (digest, locs) in ops {
        if locs.is_empty() {
            continue;
        }
        let mut list = Vec::new();
        for loc in locs {
            let index = match files.iter().position(|f| **f == loc.file) {
                Some(i) => i,
                None => {
                    files.push(&loc.file);
                    files.len() - 1
                }
            };
            list.push(pb::Location {
                source_index: i32::try_from(index).unwrap_or(i32::MAX),
                ranges: vec![loc.range()],
            });
        }
        locations.insert(digest.to_string(), pb::Locations { locations: list });
    }
    if locations.is_empty() {
        return None;
    }
    Some(pb::Source {
        locations,
        infos: files
            .into_iter()
            .map(|f| pb::SourceInfo {
                filename: f.filename.clone(),
                data: f.data.clone(),
                definition: None,
                language: f.language.clone(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            filename: name.into(),
            data: b"a\nb\nc\n".to_vec(),
            language: "yaml".into(),
        })
    }

    #[test]
    fn files_are_listed_once_and_ops_point_at_them() {
        let recipe = file("repro.yaml");
        let other = file("other.yaml");
        let at = |f: &Arc<SourceFile>, s, e| Location {
            file: f.clone(),
            start: s,
            end: e,
        };
        let a = [at(&recipe, 1, 2)];
        let b = [at(&other, 3, 3), at(&recipe, 2, 2)];
        let src = collect([
            ("sha256:a", &a[..]),
            ("sha256:b", &b[..]),
            ("sha256:c", &[][..]),
        ])
        .expect("a map");
        assert_eq!(
            src.infos
                .iter()
                .map(|i| i.filename.as_str())
                .collect::<Vec<_>>(),
            ["repro.yaml", "other.yaml"]
        );
        assert_eq!(src.infos[0].language, "yaml");
        assert!(!src.locations.contains_key("sha256:c"));
        let b = &src.locations["sha256:b"].locations;
        assert_eq!((b[0].source_index, b[1].source_index), (1, 0));
        let r = &src.locations["sha256:a"].locations[0].ranges[0];
        assert_eq!((r.start.unwrap().line, r.end.unwrap().line), (1, 2));
    }

    #[test]
    fn no_locations_no_map() {
        assert!(collect([("sha256:a", &[][..])]).is_none());
    }
}
