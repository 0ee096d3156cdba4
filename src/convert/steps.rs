//! The recipe's steps as LLB: `run` execs, `copy` from the build context,
//! `env`, `workdir` and `user`; each op points at its step's lines.
//! Pure: builds LLB only.

use super::opts::{ConvertError, Opts, err_at};
use crate::llb::{self, CopyOpts, LocalOpts, Location, Owner, State};
use crate::recipe::{Command, Recipe, Spanned, Step};

/// Runs the recipe's steps on `root`; `user` is the base image's user, and
/// what the last `user` step sets when this returns. Each step that changes
/// files pushes its result onto `stages` with its label (`step 2
/// (repro.yaml:14: run ...)`), so normalize can say which step made a file.
pub fn apply(
    recipe: &Recipe,
    opts: &Opts,
    root: State,
    user: &mut String,
    at: &dyn Fn(&Spanned<Step>) -> Option<Location>,
    stages: &mut Vec<(String, State)>,
) -> Result<State, ConvertError> {
    let mut state = root;
    if !user.is_empty() {
        state = state.with_user(user);
    }
    let context = llb::local(
        &opts.context_name,
        &LocalOpts {
            include_patterns: copy_sources(recipe),
            ..opts.context.clone()
        },
        Some("load build context".into()),
    );
    for (n, step) in recipe.steps.iter().enumerate() {
        let here = at(step);
        let changes_files = matches!(&step.value, Step::Run(_) | Step::Copy { .. });
        state = match &step.value {
            Step::Run(cmd) => run(recipe, opts, &state, cmd, here),
            Step::Copy {
                src,
                dest,
                owner,
                mode,
            } => {
                let (user_opt, group_opt) = match owner {
                    Some(o) => parse_owner(o).map_err(|m| err_at(&recipe.file, o, &m))?,
                    None => (None, None),
                };
                let dest_path = absolute(state.cwd(), &dest.value);
                let copy = CopyOpts {
                    user: user_opt,
                    group: group_opt,
                    mode: mode.as_ref().map(|m| m.value),
                    dir_contents_only: true,
                    create_dest_path: true,
                    allow_wildcard: true,
                    timestamp: None,
                };
                state
                    .file()
                    .copy(&context, &absolute(None, &src.value), &dest_path, copy)
                    .name(format!("copy {} {}", src.value, dest_path))
                    .at(here)
                    .build()
            }
            Step::Env(vars) => vars.iter().fold(state, |s, (k, v)| s.with_env(k, &v.value)),
            Step::Workdir(w) => {
                let path = absolute(state.cwd(), &w.value);
                state
                    .file()
                    .mkdir(&path, 0o755, true, Some(opts.epoch))
                    .name(format!("workdir {path}"))
                    .at(here)
                    .build()
                    .with_cwd(&path)
            }
            Step::User(u) => {
                *user = u.value.clone();
                state.with_user(user)
            }
        };
        if changes_files {
            stages.push((step_label(recipe, n, step), state.clone()));
        }
    }
    Ok(state)
}

/// `step 2 (repro.yaml:14: run openssl genpkey ...)`: a step as messages
/// name it, its command cut at 60 characters.
fn step_label(recipe: &Recipe, n: usize, step: &Spanned<Step>) -> String {
    let what = match &step.value {
        Step::Run(cmd) => format!("run {cmd}"),
        Step::Copy { src, dest, .. } => format!("copy {} {}", src.value, dest.value),
        _ => String::new(),
    };
    let what: String = match what.chars().count() > 60 {
        true => what.chars().take(60).chain("...".chars()).collect(),
        false => what,
    };
    let what = what.replace(['\n', '='], " ");
    format!(
        "step {} ({}:{}: {})",
        n + 1,
        recipe.file,
        step.span.line,
        what.trim()
    )
}

/// A `run` step: a shell string or an argv, with the recipe's args in its
/// environment.
fn run(recipe: &Recipe, opts: &Opts, state: &State, cmd: &Command, at: Option<Location>) -> State {
    let argv = match cmd {
        Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.value.clone()],
        Command::Exec(argv) => argv.iter().map(|a| a.value.clone()).collect(),
    };
    let mut exec = state
        .run(argv)
        .network(opts.network)
        .name(format!("run {cmd}"))
        .at(at);
    for decl in &recipe.args {
        if let Some(v) = opts.args.get(&decl.name) {
            exec = exec.env(&decl.name, v);
        }
    }
    exec.build().root
}

/// The context paths the copy steps read, as include patterns, so only they
/// are sent from the client.
fn copy_sources(recipe: &Recipe) -> Vec<String> {
    let mut out: Vec<String> = recipe
        .steps
        .iter()
        .filter_map(|s| match &s.value {
            Step::Copy { src, .. } => Some(
                src.value
                    .trim_start_matches('/')
                    .trim_start_matches("./")
                    .to_string(),
            ),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn absolute(cwd: Option<&str>, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        let base = cwd.unwrap_or("/").trim_end_matches('/');
        format!("{base}/{path}")
    }
}

/// `uid[:gid]` with numbers or names.
fn parse_owner(o: &Spanned<String>) -> Result<(Option<Owner>, Option<Owner>), String> {
    let one = |s: &str| -> Result<Owner, String> {
        if s.is_empty() {
            return Err(format!("owner \"{}\" has an empty user or group", o.value));
        }
        Ok(match s.parse::<u32>() {
            Ok(id) => Owner::Id(id),
            Err(_) => Owner::Name(s.to_string()),
        })
    };
    match o.value.split_once(':') {
        Some((u, g)) => Ok((Some(one(u)?), Some(one(g)?))),
        None => {
            let u = one(&o.value)?;
            Ok((Some(u.clone()), Some(u)))
        }
    }
}
