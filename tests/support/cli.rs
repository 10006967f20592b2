//! The command line's contract: unsupported cells reported, not passed; a
//! wrong expectation fails the run; bad input names file, line and field;
//! `check` lists exactly the bundled cells; the JUnit report validates and
//! `vpnlab diff` names the cells that got worse.

use libtest_mimic::Failed;
use vpnlab::model::Verdict;

use super::{report_of, run_vpnlab, tempdir, topologies_dir};

/// `vpnlab run` on the NAT-T off cells: listed as UNSUPPORTED with the
/// reason, not as a pass, and they do not fail the run.
pub fn unsupported_reported() -> Result<(), Failed> {
    let out = run_vpnlab(&[
        "run",
        "topologies/seed.toml",
        "--filter",
        "nat_t=off",
        "--report",
        "-",
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("unsupported cells must not fail the run:\n{stderr}").into());
    }
    let report = report_of(&out)?;
    if report.cells.len() != 4 {
        return Err(format!("expected the 4 nat_t=off cells, got {}", report.cells.len()).into());
    }
    for c in &report.cells {
        let o = &c.outcome;
        if o.verdict != Verdict::Unsupported {
            return Err(format!(
                "{}: verdict {}, expected unsupported",
                o.cell,
                o.verdict.label()
            )
            .into());
        }
        let reason = o.reason.as_deref().unwrap_or("");
        if !reason.contains("cannot disable NAT traversal") {
            return Err(format!("{}: reason does not say why: {reason}", o.cell).into());
        }
    }
    if !stderr.contains("UNSUPPORTED") || !stderr.contains("0 passed, 0 failed, 4 unsupported") {
        return Err(format!("table does not show the cells as unsupported:\n{stderr}").into());
    }
    Ok(())
}

/// The seed file, and the same claiming that its block-4500 cells come up
/// (they must not).
fn seed_and_wrong() -> Result<(String, String), Failed> {
    let text = std::fs::read_to_string(topologies_dir().join("seed.toml"))?;
    let wrong = text.replace(
        "when = { nat = \"block-4500\" }\ntunnel = \"down\"",
        "when = { nat = \"block-4500\" }\ntunnel = \"up\"",
    );
    assert_ne!(wrong, text, "the seed file changed shape; update this test");
    Ok((text, wrong))
}

/// A scenario whose expectation is wrong must fail the run (exit 1) and
/// name the mismatch: the verdict is computed, not assumed.
pub fn wrong_expectation_fails() -> Result<(), Failed> {
    let (_, wrong) = seed_and_wrong()?;
    let dir = tempdir()?;
    let file = dir.join("wrong.toml");
    std::fs::write(&file, wrong)?;
    let out = run_vpnlab(&[
        "run",
        &file.to_string_lossy(),
        "--filter",
        "nat=block-4500,nat_t=auto",
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.code() != Some(1) {
        return Err(format!("expected exit 1, got {:?}\n{stdout}", out.status.code()).into());
    }
    if !stdout.contains("FAIL") || !stdout.contains("tunnel: expected up, observed down") {
        return Err(format!("the table does not explain the failure:\n{stdout}").into());
    }
    if !stdout.contains("giving up after 2 retransmits") {
        return Err(format!("the initiator's log should show why IKE failed:\n{stdout}").into());
    }
    Ok(())
}

/// Bad input: a clear error naming file, line, column and field; exit 2.
pub fn invalid_rejected() -> Result<(), Failed> {
    let dir = tempdir()?;
    let file = dir.join("bad.toml");
    let text = std::fs::read_to_string(topologies_dir().join("seed.toml"))?.replace(
        "b = { node = \"gw\", addr = \"192.168.1.1/24\" }",
        "b = { node = \"gw2\", addr = \"192.168.1.1/24\" }",
    );
    std::fs::write(&file, &text)?;
    let line = text
        .lines()
        .position(|l| l.contains("gw2"))
        .ok_or("edit failed")?
        + 1;
    for cmd in ["check", "run"] {
        let out = run_vpnlab(&[cmd, &file.to_string_lossy()])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("bad.toml:{line}:");
        if out.status.code() != Some(2)
            || !stderr.contains(&want)
            || !stderr.contains("links[0].b.node: unknown node `gw2`")
        {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("vpnlab {cmd}: expected exit 2 and `{want}... links[0].b.node: unknown node`, got {:?}:\n{stderr}", out.status.code()).into());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `vpnlab check` lists every bundled cell, in file order, exactly once,
/// and counts them: the same cells the library loads.
pub fn check_lists_every_bundled_cell() -> Result<(), Failed> {
    let out = run_vpnlab(&["check"])?;
    if !out.status.success() {
        return Err(format!(
            "vpnlab check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let cells = vpnlab::scenario::load_all(&[topologies_dir()])?;
    let mut want: Vec<String> = cells.iter().map(|c| format!("ok  {}", c.id)).collect();
    want.push(format!("{} cells valid", cells.len()));
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = text.lines().collect();
    if got != want {
        return Err(format!(
            "vpnlab check printed\n{text}\nexpected\n{}",
            want.join("\n")
        )
        .into());
    }
    Ok(())
}

/// `--junit` and `vpnlab diff` on two runs of the seed's block-4500 cells:
/// as written (both pass) and with a wrong expectation (both fail). The
/// JUnit file validates against the JUnit schema (`tests/junit.xsd`, with
/// xmllint) and has one testcase per cell; the diff of a run with itself
/// is empty (exit 0), of the two runs names the cells that got worse
/// (exit 1).
pub fn junit_and_diff() -> Result<(), Failed> {
    let (text, wrong) = seed_and_wrong()?;
    super::in_tempdir(|dir| junit_and_diff_in(dir, &text, &wrong))
}

fn junit_and_diff_in(dir: &std::path::Path, right: &str, wrong: &str) -> Result<(), Failed> {
    let file = dir.join("seed.toml");
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (old, new, xml) = (path("old.json"), path("new.json"), path("cells.xml"));
    let run = |text: &str, report: &str, junit: &[&str]| -> Result<(), Failed> {
        std::fs::write(&file, text)?;
        let f = file.to_string_lossy();
        let mut args = vec!["run", &f, "--filter", "nat=block-4500", "--report", report];
        args.extend_from_slice(junit);
        run_vpnlab(&args)?;
        Ok(())
    };
    run(right, &old, &[])?;
    run(wrong, &new, &["--junit", &xml])?;

    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/junit.xsd");
    let lint = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&schema)
        .arg(&xml)
        .output()
        .map_err(|e| format!("xmllint: {e} (apt-get install libxml2-utils; ci/setup.sh does)"))?;
    if !lint.status.success() {
        return Err(format!(
            "the JUnit file does not validate:\n{}",
            String::from_utf8_lossy(&lint.stderr)
        )
        .into());
    }
    let doc = std::fs::read_to_string(&xml)?;
    let count = |tag: &str| doc.matches(tag).count();
    // block-4500 × nat_t auto, force (run, failing) and off (unsupported).
    let counts = (count("<testcase "), count("<failure "), count("<skipped "));
    if counts != (3, 2, 1) || !doc.contains("tunnel: expected up, observed down") {
        return Err(format!("expected 3 testcases, 2 failures, 1 skipped (with the mismatch), got {counts:?}:\n{doc}").into());
    }

    let same = run_vpnlab(&["diff", &old, &old])?;
    let same_out = String::from_utf8_lossy(&same.stdout);
    if same.status.code() != Some(0) || !same_out.contains("no cell's outcome changed") {
        return Err(format!("a run against itself: {:?}\n{same_out}", same.status.code()).into());
    }
    let worse = run_vpnlab(&["diff", &old, &new])?;
    let out = String::from_utf8_lossy(&worse.stdout);
    let names = out.contains("worse    seed/nat=block-4500,nat_t=auto")
        && out.contains("verdict: PASS -> FAIL")
        && out.contains("2 worse");
    if worse.status.code() != Some(1) || !names {
        return Err(format!(
            "a pass turned failure: exit {:?}\n{out}",
            worse.status.code()
        )
        .into());
    }
    Ok(())
}

/// On a terminal (a pty from util-linux's `script`), a run draws a bar with
/// the cells done out of the total and the cells running now, and still
/// prints each finished cell's line; through a pipe (every other test)
/// there is no bar.
pub fn progress_bar_on_a_terminal() -> Result<(), Failed> {
    let cell = "seed/nat=none,nat_t=auto";
    let cmd = format!(
        // A pty is 0x0 until set, and the bar then fits 80 columns.
        "stty rows 50 cols 200 && {} run topologies/seed.toml --cell {cell}",
        env!("CARGO_BIN_EXE_vpnlab")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("script (util-linux): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bar = text.contains("0/1 cells") && text.contains(&format!("running: {cell}"));
    if !out.status.success() || !bar || !text.contains(&format!("PASS        {cell}")) {
        return Err(format!(
            "no progress bar on a terminal (exit {:?}):\n{text}",
            out.status.code()
        )
        .into());
    }
    let piped = run_vpnlab(&["run", "topologies/seed.toml", "--cell", cell])?;
    if String::from_utf8_lossy(&piped.stderr).contains("cells,") {
        return Err("a bar drawn through a pipe".into());
    }
    Ok(())
}

/// The GitHub Actions example (`ci/github-actions.yml`) parses, and what
/// it names exists: the scripts it runs, the JUnit file nextest's `ci`
/// profile writes, the partitions it splits into, and every `--option` it
/// gives `vpnlab run` or `vpnlab diff` (no actionlint here: no package of
/// it installs without building it).
pub fn github_actions_example_holds() -> Result<(), Failed> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("ci/github-actions.yml"))?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
    let jobs = &doc["jobs"];
    let partitions = jobs["tests"]["strategy"]["matrix"]["partition"]
        .as_sequence()
        .map_or(0, Vec::len);
    let runs: Vec<String> = ["tests", "report"]
        .iter()
        .flat_map(|j| jobs[*j]["steps"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|s| s["run"].as_str().map(str::to_string))
        .collect();
    // One line per command: continuation lines joined.
    let all = runs.join("\n").replace("\\\n", " ");
    if partitions != 2 || !all.contains(&format!("count:${{{{ matrix.partition }}}}/{partitions}"))
    {
        return Err(
            format!("the partitions do not match the matrix ({partitions}):\n{all}").into(),
        );
    }
    for script in all.split_whitespace().filter(|w| w.starts_with("ci/")) {
        if !root.join(script).is_file() {
            return Err(format!("the workflow runs {script}, which does not exist").into());
        }
    }
    let nextest = std::fs::read_to_string(root.join(".config/nextest.toml"))?;
    // Both phases' files: the host's (`ci`) and the VM's (`ci-vm`).
    for profile in ["ci", "ci-vm"] {
        let writes = format!("[profile.{profile}.junit]\npath = \"junit.xml\"");
        if !nextest.contains(&writes)
            || !text.contains(&format!("target/nextest/{profile}/junit.xml"))
        {
            return Err(format!(
                "the uploaded JUnit files are not the ones nextest's {profile} profile writes"
            )
            .into());
        }
    }
    let help = |cmd: &str| -> Result<String, Failed> {
        Ok(String::from_utf8_lossy(&run_vpnlab(&[cmd, "--help"])?.stdout).into_owned())
    };
    let (run_help, diff_help) = (help("run")?, help("diff")?);
    let vpnlab_lines = all
        .lines()
        .filter(|l| l.contains("run-scenarios.sh") || l.contains("vpnlab diff"));
    for line in vpnlab_lines {
        let known = if line.contains("vpnlab diff") {
            &diff_help
        } else {
            &run_help
        };
        let opts = line.split_whitespace();
        if let Some(opt) = opts
            .filter(|w| w.starts_with("--") && !w.contains('='))
            .find(|opt| !known.contains(opt))
        {
            return Err(format!("the workflow passes {opt}, which vpnlab does not take").into());
        }
    }
    let diff = jobs["report"]["steps"]
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|s| {
            s["run"].as_str().is_some_and(|r| r.contains("vpnlab diff"))
                && s["if"].as_str() == Some("github.event_name == 'pull_request'")
        });
    if !diff {
        return Err("no `vpnlab diff` step on pull requests".into());
    }
    Ok(())
}
