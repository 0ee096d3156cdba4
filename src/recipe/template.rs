//! Provider URL templates in repro-get's spelling: `{{.Name}}`, `{{.Basename}}`,
//! `{{.SHA256}}`, `{{.CID}}`.
//!
//! repro-get renders these with Go's text/template; we accept exactly the four
//! field references (spaces inside the braces allowed) and reject anything else
//! when the recipe is read, so a typo never reaches a fetch. `{{.CID}}` is the
//! blob's IPFS CID from the lockfile's `/ipfs/<cid>` line with the same
//! sha256; a blob without one has no URL from such a template.

use std::fmt;

/// A field a template can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The lockfile name, e.g. `pool/main/h/hello/hello_2.10-3_amd64.deb`.
    Name,
    /// The last path component of the name.
    Basename,
    /// The lowercase hex sha256 of the blob.
    Sha256,
    /// The blob's IPFS CID, when the lockfile gives one.
    Cid,
}

/// What a template is rendered for: one blob of the lockfile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vars<'a> {
    pub name: &'a str,
    /// Lowercase hex.
    pub sha256: &'a str,
    pub cid: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

/// Why a template was rejected; `offset` is the byte in the template text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let body_start = open + 2;
            let Some(close) = rest[body_start..].find("}}") else {
                return Err(TemplateError {
                    offset: offset + open,
                    message: "unclosed \"{{\" in provider template".into(),
                });
            };
            let body = rest[body_start..body_start + close].trim();
            let field = match body {
                ".Name" => Field::Name,
                ".Basename" => Field::Basename,
                ".SHA256" => Field::Sha256,
                ".CID" => Field::Cid,
                other => {
                    return Err(TemplateError {
                        offset: offset + open,
                        message: format!(
                            "unknown template field \"{other}\" (known: {{{{.Name}}}}, {{{{.Basename}}}}, {{{{.SHA256}}}}, {{{{.CID}}}})"
                        ),
                    });
                }
            };
            pieces.push(Piece::Field(field));
            let consumed = body_start + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if let Some(pos) = rest.find("}}") {
            return Err(TemplateError {
                offset: offset + pos,
                message: "\"}}\" without a matching \"{{\" in provider template".into(),
            });
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template {
            source: text.to_string(),
            pieces,
        })
    }

    /// The fields the template uses, in order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Field(f) => Some(*f),
            Piece::Text(_) => None,
        })
    }

    /// Whether it names the blob by CID (`{{.CID}}`).
    pub fn needs_cid(&self) -> bool {
        self.fields().any(|f| f == Field::Cid)
    }

    /// Renders the template for one blob; `None` when it needs a CID and the
    /// blob has none.
    pub fn render(&self, v: Vars) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(Field::Name) => out.push_str(v.name),
                Piece::Field(Field::Basename) => out.push_str(basename(v.name)),
                Piece::Field(Field::Sha256) => out.push_str(v.sha256),
                Piece::Field(Field::Cid) => out.push_str(v.cid?),
            }
        }
        Some(out)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The last `/`-separated component of a lockfile name.
pub fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "pool/main/h/hello/hello_2.10-3_amd64.deb";
    const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    const CID: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    fn vars(cid: Option<&str>) -> Vars<'_> {
        Vars {
            name: NAME,
            sha256: SUM,
            cid,
        }
    }

    #[test]
    fn renders_every_field() {
        let t = Template::parse("http://m/debian/{{.Name}}").unwrap();
        assert_eq!(
            t.render(vars(None)).unwrap(),
            format!("http://m/debian/{NAME}")
        );
        let t = Template::parse("http://c/{{ .SHA256 }}/{{.Basename}}").unwrap();
        assert_eq!(
            t.render(vars(None)).unwrap(),
            format!("http://c/{SUM}/hello_2.10-3_amd64.deb")
        );
        assert_eq!(
            t.fields().collect::<Vec<_>>(),
            vec![Field::Sha256, Field::Basename]
        );
        assert!(!t.needs_cid());
    }

    #[test]
    fn a_cid_template_renders_only_for_a_blob_with_a_cid() {
        let t = Template::parse("http://gw/ipfs/{{.CID}}").unwrap();
        assert!(t.needs_cid());
        assert_eq!(
            t.render(vars(Some(CID))).unwrap(),
            format!("http://gw/ipfs/{CID}")
        );
        assert_eq!(t.render(vars(None)), None);
    }

    #[test]
    fn rejects_unknown_fields_and_broken_braces() {
        let e = Template::parse("http://m/{{.Nmae}}").unwrap_err();
        assert_eq!(e.offset, 9);
        assert!(e.message.contains("\".Nmae\""), "{}", e.message);
        assert!(Template::parse("http://m/{{.Name").is_err());
        assert!(Template::parse("http://m/.Name}}").is_err());
        assert!(Template::parse("http://m/{{Name}}").is_err());
    }

    #[test]
    fn basename_of_a_plain_name_is_itself() {
        assert_eq!(basename("x.deb"), "x.deb");
        assert_eq!(basename(NAME), "hello_2.10-3_amd64.deb");
    }
}
