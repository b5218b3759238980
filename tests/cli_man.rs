//! The committed man pages under `man/` are what the CLI generates now, and
//! completions and help work. To regenerate the pages after changing the
//! CLI: `ELECT_UPDATE_MAN=1 cargo test --features cli --test cli_man`.

mod cli_support;

use std::path::Path;

use cli_support::*;

const PAGES: [&str; 6] = [
    "elect.1",
    "elect-run.1",
    "elect-hold.1",
    "elect-status.1",
    "elect-watch.1",
    "elect-completions.1",
];

#[test]
fn man_pages_are_fresh() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let tmp = tempfile::tempdir().unwrap();
    let out = output(elect(["generate-man"]).arg(tmp.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut generated: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    generated.sort();
    let mut want: Vec<String> = PAGES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(generated, want);

    if std::env::var_os("ELECT_UPDATE_MAN").is_some() {
        std::fs::create_dir_all(&committed).unwrap();
        for page in PAGES {
            std::fs::copy(tmp.path().join(page), committed.join(page)).unwrap();
        }
        return;
    }
    for page in PAGES {
        let new = std::fs::read_to_string(tmp.path().join(page)).unwrap();
        let old = std::fs::read_to_string(committed.join(page)).unwrap_or_default();
        assert!(
            new == old,
            "man/{page} is out of date with the CLI; regenerate the pages with:\n\n    ELECT_UPDATE_MAN=1 cargo test --features cli --test cli_man\n"
        );
    }
}

#[test]
fn man_pages_have_the_prose_sections() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let run = std::fs::read_to_string(man.join("elect-run.1")).unwrap();
    for section in ["EXIT STATUS", "ENVIRONMENT", "FILES", "NOTES", "EXAMPLES"] {
        assert!(
            run.contains(&format!(".SH \"{section}\"")),
            "elect-run.1 lacks {section}"
        );
    }
    for topic in [
        "NFS",
        "tmpfs",
        "Forks and inherited descriptors",
        "SIGKILL",
        "ELECT_TOKEN",
        "\\-\\-no\\-inherit",
    ] {
        assert!(run.contains(topic), "elect-run.1 lacks {topic}");
    }
}

#[test]
fn the_hold_page_has_its_recipes() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let hold = std::fs::read_to_string(man.join("elect-hold.1")).unwrap();
    for section in ["OUTPUT", "HOW LONG IT HOLDS", "EXIT STATUS", "EXAMPLES"] {
        assert!(
            hold.contains(&format!(".SH \"{section}\"")),
            "elect-hold.1 lacks {section}"
        );
    }
    for topic in [
        "coproc elect hold",
        "mkfifo",
        "ELECT_NAME",
        "PR_SET_PDEATHSIG",
    ] {
        assert!(hold.contains(topic), "elect-hold.1 lacks {topic}");
    }
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = output(&mut elect(["completions", shell]));
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        for word in ["elect", "run", "status", "watch", "no-wait"] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
        assert!(
            !text.contains("generate-man"),
            "hidden subcommand leaked into {shell}"
        );
    }
    let out = output(&mut elect(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [vec!["--help"], vec!["run", "--help"], vec!["--version"]] {
        let out = output(&mut elect(&args));
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
    let out = output(&mut elect(Vec::<&str>::new()));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("elect: "));
}
