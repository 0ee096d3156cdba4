//! `${NAME}` substitution of build args into recipe strings.
//!
//! Only the braced form is expanded, so a `$` in a path or a shell word stays
//! as written; `$$` gives a literal `$`.

/// Why a string could not be expanded; `offset` is the byte where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubstError {
    pub offset: usize,
    pub message: String,
}

/// Expands `${NAME}` using `lookup`; a name `lookup` does not know is an error.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            offset += pos + 2;
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(SubstError {
                    offset: offset + pos,
                    message: "unterminated \"${\"".into(),
                });
            };
            let name = &body[..end];
            if !is_arg_name(name) {
                return Err(SubstError {
                    offset: offset + pos,
                    message: format!("\"${{{name}}}\" is not a valid arg reference"),
                });
            }
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(SubstError {
                        offset: offset + pos,
                        message: format!("undeclared arg \"{name}\" (declare it under args:)"),
                    });
                }
            }
            offset += pos + 2 + end + 1;
            rest = &body[end + 1..];
        } else {
            out.push('$');
            offset += pos + 1;
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Arg names follow the shell's rules for variable names.
pub fn is_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_braced_names_only() {
        assert_eq!(
            expand("x-${A}-$A-${EMPTY}.", &look).unwrap(),
            "x-alpha-$A-."
        );
        assert_eq!(expand("$$A $${A} $", &look).unwrap(), "$A ${A} $");
    }

    #[test]
    fn unknown_and_malformed_references_fail_at_their_offset() {
        let e = expand("abc ${NOPE}", &look).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("undeclared arg \"NOPE\""));
        let e = expand("${A}${", &look).unwrap_err();
        assert_eq!(e.offset, 4);
        let e = expand("${1x}", &look).unwrap_err();
        assert!(e.message.contains("not a valid"));
    }
}
