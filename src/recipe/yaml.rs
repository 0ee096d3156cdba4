//! A YAML document as a tree of nodes that remember where they stood in the source.
//!
//! serde's YAML crates drop positions once a value is decoded, so errors found
//! after parsing (a tag where a digest belongs, an unknown template field) could
//! not point at a line. We read yaml-rust2's marked event stream into this
//! small tree instead and decode the recipe from it by hand (see `recipe.rs`).

use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

impl Span {
    fn from_marker(m: Marker) -> Span {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Span {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One node of the document.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A scalar; `plain` is false for quoted and block scalars, whose text is
    /// never a null or a bool.
    Scalar {
        text: String,
        plain: bool,
        span: Span,
    },
    Seq {
        items: Vec<Node>,
        span: Span,
    },
    /// Keys are kept in source order; duplicates are rejected while reading.
    Map {
        entries: Vec<(Node, Node)>,
        span: Span,
    },
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Scalar { span, .. } | Node::Seq { span, .. } | Node::Map { span, .. } => *span,
        }
    }

    /// What the node is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Scalar { text, plain, .. } if *plain && is_null(text) => "null",
            Node::Scalar { .. } => "a string",
            Node::Seq { .. } => "a list",
            Node::Map { .. } => "a mapping",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { text, plain: true, .. } if is_null(text))
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Why the text is not a YAML document we accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    pub span: Span,
    pub message: String,
}

/// Parses one YAML document. An empty text gives a null scalar.
/// Anchors and aliases are refused: a recipe is short, and an alias would make
/// an error's position ambiguous.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| YamlError {
        span: Span::from_marker(*e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    match builder.docs.len() {
        0 => Ok(Node::Scalar {
            text: String::new(),
            plain: true,
            span: Span { line: 1, col: 1 },
        }),
        1 => Ok(builder.docs.remove(0)),
        _ => Err(YamlError {
            span: builder.second_doc.unwrap_or_default(),
            message: "more than one YAML document; a recipe is a single document".into(),
        }),
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Node>,
    /// For each open mapping: a key waiting for its value.
    pending_keys: Vec<Option<Node>>,
    docs: Vec<Node>,
    second_doc: Option<Span>,
    error: Option<YamlError>,
}

impl Builder {
    fn fail(&mut self, span: Span, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError { span, message });
        }
    }

    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if !self.docs.is_empty() && self.second_doc.is_none() {
                    self.second_doc = Some(node.span());
                }
                self.docs.push(node);
            }
            Some(Node::Seq { items, .. }) => items.push(node),
            Some(Node::Map { entries, .. }) => {
                let slot = self.pending_keys.last_mut();
                match slot {
                    Some(slot @ None) => {
                        if let Node::Scalar { text, .. } = &node {
                            if let Some((prev, _)) = entries.iter().find(
                                |(k, _)| matches!(k, Node::Scalar { text: t, .. } if t == text),
                            ) {
                                let (span, prev_span, key) =
                                    (node.span(), prev.span(), text.clone());
                                self.fail(
                                    span,
                                    format!(
                                        "duplicate key \"{key}\" (first at line {})",
                                        prev_span.line
                                    ),
                                );
                                return;
                            }
                        } else {
                            let span = node.span();
                            self.fail(span, "a mapping key must be a plain string".into());
                            return;
                        }
                        *slot = Some(node);
                    }
                    Some(slot @ Some(_)) => {
                        // Checked just above: the slot holds a key.
                        if let Some(key) = slot.take() {
                            entries.push((key, node));
                        }
                    }
                    None => {}
                }
            }
            Some(Node::Scalar { .. }) => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let span = Span::from_marker(mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    self.fail(
                        span,
                        "YAML anchors and tags are not supported in a recipe".into(),
                    );
                    return;
                }
                let plain = style == TScalarStyle::Plain;
                self.push_value(Node::Scalar { text, plain, span });
            }
            Event::SequenceStart(anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    self.fail(
                        span,
                        "YAML anchors and tags are not supported in a recipe".into(),
                    );
                    return;
                }
                self.stack.push(Node::Seq {
                    items: Vec::new(),
                    span,
                });
            }
            Event::MappingStart(anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    self.fail(
                        span,
                        "YAML anchors and tags are not supported in a recipe".into(),
                    );
                    return;
                }
                self.stack.push(Node::Map {
                    entries: Vec::new(),
                    span,
                });
                self.pending_keys.push(None);
            }
            Event::SequenceEnd => {
                if let Some(node) = self.stack.pop() {
                    self.push_value(node);
                }
            }
            Event::MappingEnd => {
                self.pending_keys.pop();
                if let Some(node) = self.stack.pop() {
                    self.push_value(node);
                }
            }
            Event::Alias(_) => self.fail(span, "YAML aliases are not supported in a recipe".into()),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_at(node: &Node, key: &str) -> (String, Span) {
        let Node::Map { entries, .. } = node else {
            panic!("not a map: {node:?}")
        };
        for (k, v) in entries {
            if let (Node::Scalar { text, .. }, Node::Scalar { text: vt, span, .. }) = (k, v)
                && text == key
            {
                return (vt.clone(), *span);
            }
        }
        panic!("no key {key}")
    }

    #[test]
    fn spans_are_one_based() {
        let doc = parse("a: 1\nbb:\n  c: x\nd: \"q\"\n").unwrap();
        assert_eq!(scalar_at(&doc, "a"), ("1".into(), Span { line: 1, col: 4 }));
        assert_eq!(scalar_at(&doc, "d"), ("q".into(), Span { line: 4, col: 4 }));
    }

    #[test]
    fn duplicate_keys_are_rejected_with_both_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.span.line, 3);
        assert!(err.message.contains("first at line 1"), "{}", err.message);
    }

    #[test]
    fn aliases_are_rejected() {
        let err = parse("a: &x 1\nb: *x\n").unwrap_err();
        assert_eq!(err.span.line, 1);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.span.line >= 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn empty_text_is_null_and_quoted_null_is_a_string() {
        assert!(parse("").unwrap().is_null());
        let doc = parse("a: \"null\"\nb: null\n").unwrap();
        let Node::Map { entries, .. } = doc else {
            panic!()
        };
        assert!(!entries[0].1.is_null());
        assert!(entries[1].1.is_null());
    }
}
