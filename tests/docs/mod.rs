//! The snippets of README.md and docs/*.md are checked against the code, and their relative links against the tree.
//!
//! The fence convention (docs/README.md, "Checked snippets"): the first word
//! of a fence's info string is the language, the second says what it is.
//!
//! - ```` ```yaml recipe [context=<dir>] ````: a whole recipe. Parsed by
//!   `recipe::parse`, then converted to LLB by `repro-frontend llb` with
//!   `<dir>` (default `examples/hello`) as the build context, so its
//!   lockfiles and copied files come from there.
//! - ```` ```yaml fragment ````: top-level keys of a recipe. Parsed after a
//!   minimal recipe (`version`, a pinned `base`) is appended for the keys the
//!   fragment lacks.
//! - ```` ```yaml workflow ````: another YAML file (a CI workflow), parsed as
//!   YAML.
//! - ```` ```text sums ````: a lockfile or part of one, parsed by
//!   `lockfile::parse_named`.
//!
//! Any other ```` ```yaml ```` (or `yml`) fence is an error, so nothing that
//! looks like a recipe goes unchecked. Other fences are not read. Each block
//! is handed to its parser behind as many blank lines as precede it in the
//! page, so a parser's `file:LINE:COL` points into the markdown file itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::repo;

/// A fenced block: where it starts, its info string and its text.
struct Block {
    /// 1-based line of the block's first text line.
    line: usize,
    info: String,
    body: String,
}

/// What a fence's info string says the block is.
#[derive(Debug, PartialEq)]
enum Kind {
    Recipe { context: String },
    Fragment,
    Workflow,
    Sums,
    Unchecked,
}

/// Counts of the blocks checked, so a test can tell the checker saw them.
#[derive(Default, Debug)]
struct Checked {
    recipes: usize,
    fragments: usize,
    workflows: usize,
    sums: usize,
}

/// Lines outside fenced blocks, with their 1-based numbers.
fn prose_lines(md: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            out.push((i + 1, line));
        }
    }
    out
}

/// The fenced blocks of a markdown text. A fence may be indented (inside a
/// list item); its text loses that indentation.
fn blocks(md: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, String, Vec<&str>)> = None;
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let indent = line.len() - trimmed.len();
                    open = Some((i + 2, indent, info.trim().to_string(), Vec::new()));
                }
            }
            Some((start, indent, info, body)) => {
                if trimmed == "```" {
                    let mut text = body.join("\n");
                    text.push('\n');
                    out.push(Block {
                        line: *start,
                        info: std::mem::take(info),
                        body: text,
                    });
                    open = None;
                } else {
                    let cut = line.len() - line.trim_start_matches(' ').len();
                    body.push(&line[cut.min(*indent)..]);
                }
            }
        }
    }
    match open {
        Some((start, ..)) => Err(format!("{}: a fence is never closed", start - 1)),
        None => Ok(out),
    }
}

fn kind(info: &str) -> Result<Kind, String> {
    let mut words = info.split_whitespace();
    let lang = words.next().unwrap_or("");
    if lang != "yaml" && lang != "yml" {
        return Ok(match (lang, words.next()) {
            ("text", Some("sums")) => Kind::Sums,
            _ => Kind::Unchecked,
        });
    }
    let what = words.next();
    let options: Vec<&str> = words.collect();
    let no_options = |k: Kind| {
        if options.is_empty() {
            Ok(k)
        } else {
            Err(format!("```{info}: unknown options {options:?}"))
        }
    };
    match what {
        Some("recipe") => {
            let mut context = "examples/hello".to_string();
            for opt in options {
                match opt.strip_prefix("context=") {
                    Some(dir) => context = dir.to_string(),
                    None => return Err(format!("```{info}: unknown option {opt:?}")),
                }
            }
            Ok(Kind::Recipe { context })
        }
        Some("fragment") => no_options(Kind::Fragment),
        Some("workflow") => no_options(Kind::Workflow),
        _ => Err(format!(
            "```{info}: a yaml block must say what it is: `yaml recipe`, `yaml fragment` or `yaml workflow`"
        )),
    }
}

/// The block's text behind blank lines, so that its lines keep their
/// numbers in the page.
fn in_place(block: &Block) -> String {
    "\n".repeat(block.line - 1) + &block.body
}

/// A fragment made a whole recipe: the keys a recipe needs and the fragment
/// lacks go after it, so its own lines keep their numbers.
fn wrap_fragment(text: &str) -> String {
    let has = |key: &str| text.lines().any(|l| l.starts_with(&format!("{key}:")));
    let mut out = text.to_string();
    if !has("version") {
        out.push_str("version: 1\n");
    }
    if !has("base") {
        out.push_str("base: debian:bookworm@sha256:");
        out.push_str(&"0".repeat(64));
        out.push('\n');
    }
    out
}

fn parse_recipe(file: &str, text: &str) -> Result<(), String> {
    repro_frontend::recipe::parse(file, text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `BASE=<the base a context's amd64 lockfile was made for>`: `llb` refuses
/// a lockfile whose header names another base.
fn base_arg(context: &Path) -> Result<String, String> {
    let path = context.join("SHA256SUMS-amd64");
    let sums = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    sums.lines()
        .find_map(|l| l.strip_prefix("# base: "))
        .map(|b| format!("BASE={}", b.trim()))
        .ok_or_else(|| format!("{} names no base", path.display()))
}

/// A whole recipe through `repro-frontend llb`, as tests/cli does it.
fn convert(text: &str, context: &str) -> Result<(), String> {
    let context = repo().join(context);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let recipe = dir.path().join("repro.yaml");
    std::fs::write(&recipe, text).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_repro-frontend"));
    cmd.arg("llb")
        .arg(&recipe)
        .arg("--context")
        .arg(&context)
        .arg("--base-config")
        .arg(repo().join("tests/data/recipes/base-config.json"))
        .arg("--dump");
    if text.contains("${BASE}") {
        cmd.args(["--build-arg", &base_arg(&context)?]);
    }
    if text.contains("${MIRROR}") {
        cmd.args(["--build-arg", "MIRROR=http://127.0.0.1:1/debian"]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("run repro-frontend llb: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "repro-frontend llb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // --dump prints one line per op, the terminal one last.
    match stdout.lines().last() {
        Some(last) if last.ends_with("terminal") => Ok(()),
        _ => Err(format!(
            "repro-frontend llb printed no Definition: {stdout}"
        )),
    }
}

fn check_block(file: &str, block: &Block, seen: &mut Checked) -> Result<(), String> {
    match kind(&block.info)? {
        Kind::Recipe { context } => {
            seen.recipes += 1;
            parse_recipe(file, &in_place(block))?;
            convert(&block.body, &context)
        }
        Kind::Fragment => {
            seen.fragments += 1;
            parse_recipe(file, &wrap_fragment(&in_place(block)))
        }
        Kind::Workflow => {
            seen.workflows += 1;
            yaml_rust2::YamlLoader::load_from_str(&in_place(block))
                .map(|_| ())
                .map_err(|e| format!("{file}: invalid YAML: {e}"))
        }
        Kind::Sums => {
            seen.sums += 1;
            repro_frontend::lockfile::parse_named(file, &in_place(block))
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Kind::Unchecked => Ok(()),
    }
}

/// Every checked block of one markdown text; the errors, each naming the
/// block's first line.
fn check_markdown(file: &str, md: &str, seen: &mut Checked) -> Vec<String> {
    let blocks = match blocks(md) {
        Ok(b) => b,
        Err(e) => return vec![format!("{file}:{e}")],
    };
    blocks
        .iter()
        .filter_map(|b| {
            check_block(file, b, seen)
                .err()
                .map(|e| format!("{file}:{}: ```{}: {e}", b.line - 1, b.info))
        })
        .collect()
}

/// README.md and docs/*.md, as paths relative to the repository.
fn doc_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    files.sort();
    files.insert(0, "README.md".to_string());
    files
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces
/// as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown text's headings (a repeated one gets `-1`,
/// `-2`, ... as on GitHub).
fn anchors(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for (_, line) in prose_lines(md) {
        if !line.starts_with('#') {
            continue;
        }
        let Some(text) = line.trim_start_matches('#').strip_prefix(' ') else {
            continue;
        };
        let base = slug(text);
        let n = seen.entry(base.clone()).or_default();
        out.push(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// The link targets `](...)` of a markdown text's prose, with their lines.
fn links(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose_lines(md) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push((n, rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
    }
    out
}

/// The relative links of `md` (the file `file`, relative to `root`) that
/// point at no file, or at no heading of a markdown file.
fn broken_links(root: &Path, file: &str, md: &str) -> Vec<String> {
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for (n, target) in links(md) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
        if path.is_empty() {
            if !anchors(md).iter().any(|a| a == anchor) {
                out.push(format!("{file}:{n}: {target}: no such heading"));
            }
            continue;
        }
        let resolved: PathBuf = root.join(dir).join(path);
        if !resolved.exists() {
            out.push(format!("{file}:{n}: {target}: no such file"));
            continue;
        }
        if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&resolved).unwrap_or_default();
            if !anchors(&text).iter().any(|a| a == anchor) {
                out.push(format!("{file}:{n}: {target}: no such heading"));
            }
        }
    }
    out
}

#[test]
fn docs_every_snippet_parses_and_every_recipe_converts() {
    let mut seen = Checked::default();
    let mut errors = Vec::new();
    for file in doc_files() {
        let md = std::fs::read_to_string(repo().join(&file)).unwrap();
        errors.extend(check_markdown(&file, &md, &mut seen));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The checker really saw the snippets the pages hold today.
    assert!(seen.recipes >= 2, "{seen:?}");
    assert!(seen.fragments >= 3, "{seen:?}");
    assert!(seen.workflows >= 1, "{seen:?}");
    assert!(seen.sums >= 3, "{seen:?}");
}

/// The one error `check_markdown` finds in a page, with what it counted.
fn the_error(md: &str) -> (String, Checked) {
    let mut seen = Checked::default();
    let mut errors = check_markdown("broken.md", md, &mut seen);
    assert_eq!(errors.len(), 1, "{errors:?}");
    (errors.remove(0), seen)
}

#[test]
fn docs_a_recipe_that_stops_parsing_fails_with_its_line() {
    // `pakages` for `packages`: the page's recipe would no longer parse.
    let md = "# A page\n\nText.\n\n```yaml recipe\nversion: 1\nbase: debian:bookworm@sha256:0000000000000000000000000000000000000000000000000000000000000000\npakages:\n  sums: SHA256SUMS-${TARGETARCH}\n```\n";
    let (error, seen) = the_error(md);
    assert_eq!(seen.recipes, 1);
    // The parser's own message, with the line of the markdown file.
    assert!(
        error.contains("broken.md:8:1: unknown key \"pakages\""),
        "{error}"
    );
}

#[test]
fn docs_a_fragment_and_a_lockfile_that_stop_parsing_fail() {
    let md = "```yaml fragment\nimage:\n  layers: flat\n```\n\n```text sums\n2e6e2f1a0007dc43bc91c273fd36e91e40a4f1c2765a03eca68b70a42103878a  /etc/passwd\n```\n";
    let mut seen = Checked::default();
    let errors = check_markdown("broken.md", md, &mut seen);
    assert_eq!((seen.fragments, seen.sums), (1, 1));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("broken.md:3:"), "{}", errors[0]);
    assert!(
        errors[1].contains("broken.md:7:") && errors[1].contains("absolute"),
        "{}",
        errors[1]
    );
}

#[test]
fn docs_a_yaml_block_without_a_kind_fails() {
    let md = "```yaml\nversion: 1\n```\n";
    let (error, _) = the_error(md);
    assert!(error.contains("must say what it is"), "{error}");
}

#[test]
fn docs_a_recipe_that_parses_but_cannot_convert_fails() {
    // A lockfile that is not in the context: parsing passes, `llb` does not.
    let md = "```yaml recipe\nversion: 1\nbase: debian:bookworm@sha256:0000000000000000000000000000000000000000000000000000000000000000\npackages:\n  sums: NO-SUCH-SUMS\n  providers:\n    - http://127.0.0.1:1/{{.Name}}\n```\n";
    let (error, seen) = the_error(md);
    assert_eq!(seen.recipes, 1);
    assert!(error.contains("repro-frontend llb failed"), "{error}");
}

#[test]
fn docs_relative_links_point_at_files_and_headings() {
    let root = repo();
    let mut errors = Vec::new();
    for file in doc_files() {
        let md = std::fs::read_to_string(root.join(&file)).unwrap();
        errors.extend(broken_links(&root, &file, &md));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn docs_a_broken_link_is_found() {
    let root = repo();
    let md = "# Top\n\n[ok](#top), [ok](recipe.md#errors), [gone](nowhere.md), [bad](recipe.md#no-such-part), [web](https://127.0.0.1/x)\n\n```sh\n[not a link](inside-a-fence.md)\n```\n";
    let errors = broken_links(&root, "docs/page.md", md);
    assert_eq!(
        errors,
        [
            "docs/page.md:3: nowhere.md: no such file",
            "docs/page.md:3: recipe.md#no-such-part: no such heading",
        ]
    );
}

#[test]
fn docs_headings_get_github_anchors() {
    let md = "# Layers: `image.layers: base`\n## Reference (version 1)\n## Reference (version 1)\n```sh\n# a comment\n```\n";
    assert_eq!(
        anchors(md),
        [
            "layers-imagelayers-base",
            "reference-version-1",
            "reference-version-1-1"
        ]
    );
}
