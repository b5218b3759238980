//! README's shell recipes run as written: every fenced block whose info
//! string is `bash recipe` or `sh recipe` is a whole script, written to a
//! file and run with the built `elect` first on `PATH` and a run directory
//! of the test's own in `ELECT_DIR`. Also README's demo command prints the
//! take-over line it promises.

mod cli_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cli_support::*;

/// A recipe: its shell (`bash` or `sh`) and its text.
struct Recipe {
    shell: String,
    text: String,
}

/// README's recipes, in order.
fn recipes() -> Vec<Recipe> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut all = Vec::new();
    let mut current: Option<Recipe> = None;
    for line in readme.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => {
                let words: Vec<&str> = info.split_whitespace().collect();
                if let [shell @ ("bash" | "sh"), "recipe"] = words[..] {
                    current = Some(Recipe {
                        shell: shell.to_string(),
                        text: String::new(),
                    });
                }
            }
            (Some(_), Some("")) => all.push(current.take().unwrap()),
            (Some(r), _) => {
                r.text.push_str(line);
                r.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "an unclosed recipe");
    all
}

/// The recipes that name `word`.
fn recipes_with(word: &str) -> Vec<Recipe> {
    recipes()
        .into_iter()
        .filter(|r| r.text.contains(word))
        .collect()
}

/// Writes `recipe` into an executable file in `dir`.
fn script(dir: &Path, name: &str, recipe: &Recipe) -> PathBuf {
    assert!(
        recipe
            .text
            .starts_with(&format!("#!/bin/{}\n", recipe.shell)),
        "a recipe starts with its #! line: {}",
        recipe.text
    );
    let path = dir.join(name);
    std::fs::write(&path, &recipe.text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The script at `path` with `args`, `elect` first on `PATH`, `run` as the
/// run directory.
fn run_script(path: &Path, args: &[&str], run: &Path) -> Command {
    let bin = Path::new(ELECT).parent().unwrap();
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("ELECT_DIR", run)
        .env_remove("ELECT_NAME")
        .env_remove("ELECT_SLOT")
        .env_remove("ELECT_TOKEN")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn readme_has_the_recipes() {
    let all = recipes();
    let shells: Vec<&str> = all.iter().map(|r| r.shell.as_str()).collect();
    assert_eq!(shells, ["bash", "sh", "sh"], "the recipes README has");
    assert_eq!(recipes_with("elect hold").len(), 2);
    assert_eq!(recipes_with("ELECT_NAME").len(), 1);
}

#[test]
fn the_section_recipes_run_as_written() {
    for (i, recipe) in recipes_with("elect hold").iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let path = script(tmp.path(), &format!("section{i}"), recipe);

        // Alone: the section runs under the ticket, which is free after.
        let out = output(&mut run_script(&path, &[], &run));
        let text = String::from_utf8(out.stdout).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(out.status), 0, "{}: {text}{err}", recipe.shell);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let rest = lines[0]
            .strip_prefix("deploying in slot 0 with token ")
            .unwrap_or_else(|| panic!("{text}"));
        rest.parse::<u64>().expect("a token");
        assert_eq!(lines[1], "deployed");
        assert!(!held(&run, "deploy", 0), "released after the section");

        // While someone else holds "deploy", the section waits for it.
        let holder = holder(&run, "deploy", &[]);
        let mut waiting = Proc::spawn(&mut run_script(&path, &[], &run));
        let out = waiting.stdout_lines();
        wait_until("the script's hold in line", || {
            status_json(&run, "deploy")["resources"][0]["waiters"]
                .as_array()
                .is_some_and(|w| w.len() == 1)
        });
        assert!(out.try_recv().is_err(), "no section before the ticket");
        drop(holder);
        assert!(next_line(&out).starts_with("deploying in slot 0 with token "));
        assert_eq!(next_line(&out), "deployed");
        assert_eq!(code(waiting.wait()), 0);
        assert!(!held(&run, "deploy", 0));
    }
}

#[test]
fn the_section_recipes_end_with_hold_s_status_when_no_ticket_comes() {
    for (i, recipe) in recipes_with("elect hold").iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        // As README says: with -n, the read fails and wait returns 75.
        let no_wait = Recipe {
            shell: recipe.shell.clone(),
            text: recipe
                .text
                .replacen("elect hold deploy", "elect hold -n deploy", 1),
        };
        let path = script(tmp.path(), &format!("section{i}"), &no_wait);
        let _holder = holder(&run, "deploy", &[]);
        let out = output(&mut run_script(&path, &[], &run));
        assert_eq!(code(out.status), 75, "{}", recipe.shell);
        assert!(out.stdout.is_empty(), "no section, nothing after it");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("elect: no ticket of \"deploy\""), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn the_whole_script_idiom_runs_as_written() {
    let recipe = recipes_with("ELECT_NAME").pop().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let path = script(tmp.path(), "nightly", &recipe);
    let out = output(&mut run_script(&path, &["a b", "c"], &run));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        code(out.status),
        0,
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rest = text
        .strip_prefix("nightly: slot 0, token ")
        .unwrap_or_else(|| panic!("{text}"));
    let (token, args) = rest.split_once(", ").unwrap();
    token.parse::<u64>().expect("a token");
    assert_eq!(args, "arguments a b c\n");

    // A second start while the first runs waits for it: under
    // `elect run nightly` already, the script does not start another.
    let holder = holder(&run, "nightly", &[]);
    let mut second = Proc::spawn(&mut run_script(&path, &[], &run));
    let out = second.stdout_lines();
    wait_until("the second in line", || {
        status_json(&run, "nightly")["resources"][0]["waiters"]
            .as_array()
            .is_some_and(|w| w.len() == 1)
    });
    drop(holder);
    assert!(next_line(&out).starts_with("nightly: slot 0, token "));
    assert_eq!(code(second.wait()), 0);
}

/// README's demo, `cargo run --example echo`, as cargo builds it for the
/// tests: it prints the take-over line it promises, every time.
#[test]
fn the_demo_prints_the_take_over() {
    // The example is built beside the test binaries: target/debug/examples.
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let demo = examples.join("echo");
    if !demo.exists() {
        eprintln!(
            "SKIPPED the_demo_prints_the_take_over: {} is not built (cargo test builds it)",
            demo.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = output(
        Command::new(&demo)
            .env("ELECT_DIR", tmp.path())
            .env_remove("ELECT_ETCD")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null()),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("demo:")).collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[1].starts_with("demo: SIGKILL owner "), "{text}");
    let takeover = lines[2];
    assert!(
        takeover.starts_with("demo: pid ")
            && takeover.contains(" took slot ")
            && takeover.ends_with(" ms after the kill"),
        "{text}"
    );
    assert!(text.contains("Hello World, pid: "), "{text}");
}
