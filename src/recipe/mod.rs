//! The recipe: parsing `repro.yaml` into a validated model, and expanding build args in it.
//!
//! Decoding is strict: an unknown key, a value of the wrong kind or a malformed
//! template is an error that names the file, line and column of the item.
//! Build args are expanded afterwards by [`Recipe::expand`], which keeps the
//! spans so that an undeclared `${NAME}` can be pointed at too.

pub mod args;
mod decode;
mod model;
pub mod reference;
pub mod template;
pub mod yaml;

pub use model::*;

use std::collections::BTreeMap;

use decode::{Decoder, shift};
use yaml::Span;

/// Parses a recipe. `file` names it in errors (the `filename` opt).
pub fn parse(file: &str, text: &str) -> Result<Recipe, RecipeError> {
    let root = yaml::parse(text).map_err(|e| RecipeError {
        file: file.to_string(),
        span: e.span,
        message: format!("invalid YAML: {}", e.message),
    })?;
    let mut recipe = Decoder { file }.recipe(&root)?;
    recipe.text = text.to_string();
    Ok(recipe)
}

/// The lines (1-based, inclusive) of the item that starts at `span`: its own
/// line and every following line indented deeper than the item's column,
/// without trailing blank or comment lines. Block-style YAML puts an item's
/// continuation (a `run: |` script, a mapping's keys) there.
pub fn item_lines(text: &str, span: Span) -> (usize, usize) {
    let start = span.line.max(1);
    let mut end = start;
    for (i, line) in text.lines().enumerate().skip(start) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.len() - trimmed.len() < span.col {
            break;
        }
        end = i + 1;
    }
    (start, end)
}

/// The values of all args a recipe can see, after build args are applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgValues {
    pub values: BTreeMap<String, String>,
}

impl ArgValues {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

impl Recipe {
    /// Works out every arg's value: declared defaults, overridden by
    /// `build_args`, plus the predefined ones in `predefined`.
    /// A build arg the recipe does not declare and BuildKit does not set is an error.
    pub fn arg_values(
        &self,
        build_args: &BTreeMap<String, String>,
        predefined: &BTreeMap<String, String>,
    ) -> Result<ArgValues, RecipeError> {
        let mut values = predefined.clone();
        for decl in &self.args {
            // Defaults may use args declared before them and the predefined ones.
            let lookup = |n: &str| values.get(n).cloned();
            let default = args::expand(&decl.default, &lookup).map_err(|e| RecipeError {
                file: self.file.clone(),
                span: decl.span,
                message: format!("in the default of {}: {}", decl.name, e.message),
            })?;
            let value = build_args.get(&decl.name).cloned().unwrap_or(default);
            values.insert(decl.name.clone(), value);
        }
        for (name, value) in build_args {
            if PREDEFINED_ARGS.contains(&name.as_str()) {
                values.insert(name.clone(), value.clone());
            } else if !self.args.iter().any(|d| &d.name == name) {
                let declared: Vec<&str> = self.args.iter().map(|d| d.name.as_str()).collect();
                return Err(RecipeError {
                    file: self.file.clone(),
                    span: Span { line: 1, col: 1 },
                    message: format!(
                        "build arg \"{name}\" is not declared in the recipe (declared: {})",
                        if declared.is_empty() {
                            "none".to_string()
                        } else {
                            declared.join(", ")
                        }
                    ),
                });
            }
        }
        Ok(ArgValues { values })
    }

    /// Expands `${NAME}` everywhere args are allowed, except in shell-form
    /// `run` strings, which see the args as environment variables instead.
    pub fn expand(&self, args: &ArgValues) -> Result<Recipe, RecipeError> {
        let x = Expander {
            file: &self.file,
            args,
        };
        let mut out = self.clone();
        out.base = x.one(&self.base)?;
        if let Some(p) = &self.packages {
            out.packages = Some(x.packages(p)?);
        }
        out.steps = self
            .steps
            .iter()
            .map(|s| Ok(Spanned::new(x.step(&s.value)?, s.span)))
            .collect::<Result<_, RecipeError>>()?;
        out.image = x.image(&self.image)?;
        Ok(out)
    }
}

/// Expands build args in the parts of one recipe, each error at its place.
struct Expander<'a> {
    file: &'a str,
    args: &'a ArgValues,
}

impl Expander<'_> {
    fn one(&self, s: &Spanned<String>) -> Result<Spanned<String>, RecipeError> {
        let lookup = |n: &str| self.args.get(n).map(str::to_string);
        args::expand(&s.value, &lookup)
            .map(|v| Spanned::new(v, s.span))
            .map_err(|e| RecipeError {
                file: self.file.to_string(),
                span: shift(s.span, e.offset),
                message: e.message,
            })
    }

    fn list(&self, l: &[Spanned<String>]) -> Result<Vec<Spanned<String>>, RecipeError> {
        l.iter().map(|s| self.one(s)).collect()
    }

    fn map(
        &self,
        m: &[(String, Spanned<String>)],
    ) -> Result<Vec<(String, Spanned<String>)>, RecipeError> {
        m.iter()
            .map(|(k, v)| Ok((k.clone(), self.one(v)?)))
            .collect()
    }

    fn option(&self, s: &Option<Spanned<String>>) -> Result<Option<Spanned<String>>, RecipeError> {
        s.as_ref().map(|s| self.one(s)).transpose()
    }

    fn packages(&self, p: &Packages) -> Result<Packages, RecipeError> {
        let decoder = Decoder { file: self.file };
        let providers = self.list(&p.providers)?;
        for pr in &providers {
            decoder.template(pr)?;
        }
        // Checked again once build args are in: `${PKG}` could be `-o...`.
        let install = self.list(&p.install)?;
        for i in &install {
            decoder.package_name(i)?;
        }
        Ok(Packages {
            span: p.span,
            sums: self.list(&p.sums)?,
            providers,
            installer: p.installer.clone(),
            signatures: p.signatures,
            install,
            allow_stale_lock: p.allow_stale_lock,
            fetch_timeout: p.fetch_timeout.clone(),
        })
    }

    fn step(&self, step: &Step) -> Result<Step, RecipeError> {
        Ok(match step {
            Step::Run(Command::Shell(c)) => Step::Run(Command::Shell(c.clone())),
            Step::Run(Command::Exec(argv)) => Step::Run(Command::Exec(self.list(argv)?)),
            Step::Copy {
                src,
                dest,
                owner,
                mode,
            } => Step::Copy {
                src: self.one(src)?,
                dest: self.one(dest)?,
                owner: self.option(owner)?,
                mode: mode.clone(),
            },
            Step::Env(m) => Step::Env(self.map(m)?),
            Step::Workdir(w) => Step::Workdir(self.one(w)?),
            Step::User(u) => Step::User(self.one(u)?),
        })
    }

    fn image(&self, img: &ImageSettings) -> Result<ImageSettings, RecipeError> {
        Ok(ImageSettings {
            entrypoint: img
                .entrypoint
                .as_deref()
                .map(|l| self.list(l))
                .transpose()?,
            cmd: img.cmd.as_deref().map(|l| self.list(l)).transpose()?,
            env: self.map(&img.env)?,
            workdir: self.option(&img.workdir)?,
            user: self.option(&img.user)?,
            labels: self.map(&img.labels)?,
            expose: self.list(&img.expose)?,
            volumes: self.list(&img.volumes)?,
            stop_signal: self.option(&img.stop_signal)?,
            layers: img.layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"# syntax=repro-frontend:v0
version: 1
args:
  BASE: registry.example/debian@sha256:0000000000000000000000000000000000000000000000000000000000000000
  MIRROR: http://deb.example/debian
base: ${BASE}
epoch: 1700000000
packages:
  sums: SHA256SUMS-${TARGETARCH}
  providers:
    - ${MIRROR}/{{.Name}}
steps:
  - run: hello > /greeting
  - run: [gcc, -o, /usr/local/bin/x, /src/x.c]
  - copy: {src: x.c, dest: /src/x.c, owner: "0:0", mode: "0644"}
  - env: {LANG: C.UTF-8}
  - workdir: /src
  - user: nobody
image:
  entrypoint: [/usr/bin/hello]
  cmd: []
  env: {A: b}
  labels: {org.example.k: v}
  expose: ["8080", 53/udp]
  volumes: [/data]
  stop-signal: SIGTERM
"#;

    #[test]
    fn parses_every_key() {
        let r = parse("repro.yaml", GOOD).unwrap();
        assert_eq!(r.args.len(), 2);
        assert_eq!(r.base.value, "${BASE}");
        assert_eq!(r.base.span, Span { line: 6, col: 7 });
        assert_eq!(r.epoch.as_ref().unwrap().value, 1_700_000_000);
        assert_eq!(r.steps.len(), 6);
        assert!(
            matches!(&r.steps[0].value, Step::Run(Command::Shell(s)) if s.value == "hello > /greeting")
        );
        assert!(matches!(&r.steps[2].value, Step::Copy { mode: Some(m), .. } if m.value == 0o644));
        assert_eq!(r.image.cmd.as_ref().unwrap().len(), 0);
        assert_eq!(r.image.expose.len(), 2);
    }

    fn err(text: &str) -> RecipeError {
        parse("repro.yaml", text).unwrap_err()
    }

    #[test]
    fn fetch_timeouts_are_seconds_or_minutes_and_private_keys_lists() {
        let base =
            "base: d@sha256:1111111111111111111111111111111111111111111111111111111111111111\n";
        for (given, secs) in [
            ("90", 90),
            ("90s", 90),
            ("10m", 600),
            ("1s", 1),
            ("1440m", 86_400),
        ] {
            let text = format!("{base}packages:\n  sums: S\n  fetch-timeout: {given}\n");
            let r = parse("repro.yaml", &text).unwrap();
            let t = r.packages.unwrap().fetch_timeout.unwrap();
            assert_eq!(t.value, secs, "{given}");
        }
        for bad in ["0", "0s", "86401", "1441m", "1h", "-5", "m", "ten"] {
            let text = format!("{base}packages:\n  sums: S\n  fetch-timeout: {bad}\n");
            let e = err(&text);
            assert!(e.message.contains("must be a duration"), "{bad}: {e}");
        }
        let text = format!("{base}private-keys:\n  remove: [/etc/a/*.key]\n  keep: [/srv/k]\n");
        let r = parse("repro.yaml", &text).unwrap();
        assert_eq!(r.private_keys.remove[0].value, "/etc/a/*.key");
        assert_eq!(r.private_keys.keep[0].value, "/srv/k");
        for bad in ["/", "/a//b", "/a/../b", "/a/./b"] {
            let text = format!("{base}private-keys:\n  keep: [\"{bad}\"]\n");
            assert!(
                err(&text).message.contains("must be an absolute path"),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let e = err("base: x@sha256:00\nbsae: y\n");
        assert_eq!((e.span.line, e.span.col), (2, 1));
        assert!(
            e.to_string()
                .starts_with("repro.yaml:2:1: unknown key \"bsae\""),
            "{e}"
        );
        let e = err("base: x\nsteps:\n  - rnu: ls\n");
        assert_eq!(
            e.to_string(),
            "repro.yaml:3:5: unknown step kind \"rnu\" (expected one of: run, copy, env, workdir, user)"
        );
    }

    #[test]
    fn wrong_kinds_and_missing_keys_are_errors() {
        assert!(
            err("steps: []\n")
                .message
                .contains("missing required key \"base\"")
        );
        assert!(err("base: [a]\n").message.contains("base must be a string"));
        assert!(
            err("base: x\nepoch: yesterday\n")
                .message
                .contains("epoch must be")
        );
        assert!(
            err("base: x\npackages: {providers: []}\n")
                .message
                .contains("sums")
        );
        assert!(
            err("base: x\nimage: {expose: [\"0\"]}\n")
                .message
                .contains("not a port")
        );
        assert!(
            err("base: x\nsteps:\n  - copy: {src: a}\n")
                .message
                .contains("dest")
        );
        assert!(
            err("base: x\nsteps:\n  - copy: {src: a, dest: b, mode: rw}\n")
                .message
                .contains("octal")
        );
        assert!(
            err("base: x\nargs: {TARGETARCH: x}\n")
                .message
                .contains("set by BuildKit")
        );
        assert!(err("").message.contains("empty"));
        assert!(err("base: x\nversion: 2\n").message.contains("version"));
    }

    #[test]
    fn bad_template_points_into_the_string() {
        let e = err("base: x\npackages:\n  sums: S\n  providers:\n    - http://m/{{.Nmae}}\n");
        assert_eq!((e.span.line, e.span.col), (5, 16));
        assert!(e.message.contains(".Nmae"));
    }

    #[test]
    fn args_resolve_with_build_args_and_reject_undeclared_ones() {
        let r = parse("repro.yaml", GOOD).unwrap();
        let mut pre = BTreeMap::new();
        pre.insert("TARGETARCH".to_string(), "amd64".to_string());
        let mut build = BTreeMap::new();
        build.insert("MIRROR".to_string(), "http://127.0.0.1:1/d".to_string());
        build.insert("SOURCE_DATE_EPOCH".to_string(), "5".to_string());
        let vals = r.arg_values(&build, &pre).unwrap();
        let x = r.expand(&vals).unwrap();
        assert!(x.base.value.starts_with("registry.example/debian@sha256:"));
        let p = x.packages.unwrap();
        assert_eq!(p.sums[0].value, "SHA256SUMS-amd64");
        assert_eq!(p.providers[0].value, "http://127.0.0.1:1/d/{{.Name}}");
        // Shell strings are left for the shell.
        assert!(
            matches!(&x.steps[0].value, Step::Run(Command::Shell(s)) if s.value == "hello > /greeting")
        );

        build.insert("NOPE".to_string(), "1".to_string());
        let e = r.arg_values(&build, &pre).unwrap_err();
        assert!(e.message.contains("\"NOPE\" is not declared"), "{e}");
    }

    #[test]
    fn a_package_name_from_a_build_arg_is_checked_after_expansion() {
        let text = "args:\n  PKG: hello\nbase: img@sha256:1\npackages:\n  install: [\"${PKG}\"]\n  sums: SHA256SUMS\n";
        let r = parse("repro.yaml", text).unwrap();
        let mut build = BTreeMap::new();
        build.insert(
            "PKG".to_string(),
            "-oDebug::pkgProblemResolver=1".to_string(),
        );
        let vals = r.arg_values(&build, &BTreeMap::new()).unwrap();
        let e = r.expand(&vals).unwrap_err();
        assert_eq!((e.span.line, e.span.col), (5, 13));
        assert!(
            e.message
                .contains("\"-oDebug::pkgProblemResolver=1\" is not a package name"),
            "{e}"
        );
    }

    #[test]
    fn undeclared_reference_points_at_its_column() {
        let r = parse("repro.yaml", "base: img@${NOPE}\n").unwrap();
        let e = r.expand(&ArgValues::default()).unwrap_err();
        assert_eq!((e.span.line, e.span.col), (1, 11));
        assert!(e.message.contains("undeclared arg \"NOPE\""));
    }

    #[test]
    fn an_item_spans_its_deeper_indented_lines() {
        let text = "steps:\n  - run: |\n      a\n\n      b\n  # c\n  - copy:\n      src: x\n      dest: /x\nimage: {}\n";
        let r = parse(
            "repro.yaml",
            &format!("base: a@sha256:{}\n{text}", "1".repeat(64)),
        )
        .unwrap();
        let spans: Vec<(usize, usize)> = r
            .steps
            .iter()
            .map(|s| item_lines(&r.text, s.span))
            .collect();
        assert_eq!(spans, [(3, 6), (8, 10)]);
        assert_eq!(item_lines(&r.text, r.base.span), (1, 1));
    }
}
