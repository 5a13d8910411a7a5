//! NixOS switch with a health gate and rollback, end to end: `labctl apply -f` through the
//! real coordinator to a real agent, whose `nixosRebuild` resources run real processes.
//!
//! NixOS itself cannot run here (the tests run on Debian, without Nix), so the agent gets
//! stand-ins: `nixos-rebuild`, `nix-env` and a health check `check-web` on its `PATH`, and a
//! NixOS-shaped tree (`etc/NIXOS`, `nix/var/nix/profiles/system-N-link`, `run/current-system`,
//! store paths with `bin/switch-to-configuration`) as its `--facts-root`, which config tasks
//! use for detection and the system profile (`/` in production). The stand-ins build a new
//! generation per switch (healthy, unhealthy or hanging, as the flake's `#attribute` says),
//! roll back like `nix-env --rollback` and activate by repointing `run/current-system`; every
//! call is logged to `calls.log` so the test sees what ran and what did not.
//!
//! Covered: a healthy switch (new generation kept, output streamed live), an unhealthy one
//! (automatic rollback to the generation that ran before, the check's output in the result), a hanging
//! check (killed at its timeout, rolled back), a failed build (no health check, no rollback),
//! the channel configuration (`--upgrade`), explicit rollback to a named generation and its
//! idempotence, a generation that does not exist, a node that is not NixOS, and bad specs
//! refused before anything runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use lab_tests::{stderr, wait_until, Cluster};
use serde_json::Value;

/// The stand-in `nixos-rebuild`. `@ROOT@` and `@LOG@` are replaced.
const NIXOS_REBUILD: &str = r#"#!/bin/sh
# Stand-in for nixos-rebuild (labfleet test): fake generations under ROOT.
ROOT='@ROOT@'
P="$ROOT/nix/var/nix/profiles"
echo "nixos-rebuild $*" >> '@LOG@'
gens() { ls "$P" | sed -n 's/^system-\([0-9]*\)-link$/\1/p' | sort -n; }
current() { readlink "$P/system" | sed 's/^system-\([0-9]*\)-link$/\1/'; }
activate() { exec "$P/system/bin/switch-to-configuration" switch; }
case "$1" in
  dry-build) echo "these 3 derivations will be built"; exit 0 ;;
  switch) ;;
  *) echo "unsupported: $*" >&2; exit 2 ;;
esac
if [ "$2" = --rollback ]; then
  cur=$(current)
  prev=$(gens | awk -v c="$cur" '$1 < c' | tail -n 1)
  [ -n "$prev" ] || { echo "error: no generation older than the current ($cur) exists" >&2; exit 1; }
  echo "switching profile from version $cur to $prev"
  ln -sfn "system-$prev-link" "$P/system"
  activate
fi
case "$2" in
  --flake) flavour=${3##*#} ;;
  *) flavour=good ;;
esac
echo "building the system configuration..." >&2
if [ "$flavour" = fail ]; then
  echo "error: builder for '/nix/store/abc-etc.drv' failed with exit code 1" >&2
  exit 1
fi
n=$(( $(gens | tail -n 1) + 1 ))
d="$ROOT/nix/store/$n$n$n-nixos-system-n1-24.05.$n"
mkdir -p "$d/bin"
echo "24.05.$n (Uakari)" > "$d/nixos-version"
[ "$flavour" = good ] && touch "$d/healthy"
[ "$flavour" = hang ] && touch "$d/hang"
cat > "$d/bin/switch-to-configuration" <<EOS
#!/bin/sh
echo "activating generation $n" >&2
ln -sfn "../nix/store/$(basename "$d")" "$ROOT/run/current-system"
EOS
chmod +x "$d/bin/switch-to-configuration"
ln -sfn "../../../store/$(basename "$d")" "$P/system-$n-link"
ln -sfn "system-$n-link" "$P/system"
activate
"#;

/// The stand-in `nix-env`: only `--profile P --switch-generation N`.
const NIX_ENV: &str = r#"#!/bin/sh
echo "nix-env $*" >> '@LOG@'
[ "$1" = --profile ] && [ "$3" = --switch-generation ] || { echo "unsupported: $*" >&2; exit 2; }
dir=$(dirname "$2")
[ -e "$dir/system-$4-link" ] || { echo "error: generation $4 does not exist" >&2; exit 1; }
echo "switching profile from version $(readlink "$2") to $4"
ln -sfn "system-$4-link" "$2"
"#;

/// The health check: healthy, refused or hanging, as the running generation says.
const CHECK_WEB: &str = r#"#!/bin/sh
echo "check-web $*" >> '@LOG@'
C='@ROOT@/run/current-system'
echo "GET http://localhost:8080/healthz"
[ -e "$C/hang" ] && exec sleep 60
[ -e "$C/healthy" ] && { echo "200 OK"; exit 0; }
echo "connection refused" >&2
exit 7
"#;

struct Fake {
    root: PathBuf,
    bin: PathBuf,
    log: PathBuf,
}

impl Fake {
    /// A NixOS tree with generations 40 and 41 (current), both healthy, and the stand-ins.
    fn new(dir: &Path) -> Fake {
        let fake = Fake {
            root: dir.join("root"),
            bin: dir.join("bin"),
            log: dir.join("calls.log"),
        };
        let root = &fake.root;
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("nix/var/nix/profiles")).unwrap();
        std::fs::write(root.join("etc/NIXOS"), "").unwrap();
        std::fs::write(
            root.join("etc/os-release"),
            "ID=nixos\nVERSION_ID=\"24.05\"\n",
        )
        .unwrap();
        std::fs::write(&fake.log, "").unwrap();
        std::fs::create_dir_all(&fake.bin).unwrap();
        for (name, text) in [
            ("nixos-rebuild", NIXOS_REBUILD),
            ("nix-env", NIX_ENV),
            ("check-web", CHECK_WEB),
        ] {
            let text = text
                .replace("@ROOT@", root.to_str().unwrap())
                .replace("@LOG@", fake.log.to_str().unwrap());
            let path = fake.bin.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Generations 40 and 41, made the way the stand-in makes them.
        for _ in 0..2 {
            let out = std::process::Command::new(fake.bin.join("nixos-rebuild"))
                .args(["switch", "--flake", "/etc/nixos#good"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let profiles = root.join("nix/var/nix/profiles");
        std::fs::rename(
            profiles.join("system-1-link"),
            profiles.join("system-40-link"),
        )
        .unwrap();
        std::fs::rename(
            profiles.join("system-2-link"),
            profiles.join("system-41-link"),
        )
        .unwrap();
        std::os::unix::fs::symlink("system-41-link", profiles.join("system.new")).unwrap();
        std::fs::rename(profiles.join("system.new"), profiles.join("system")).unwrap();
        std::fs::write(&fake.log, "").unwrap();
        fake
    }

    fn profile(&self) -> String {
        std::fs::read_link(self.root.join("nix/var/nix/profiles/system"))
            .unwrap()
            .display()
            .to_string()
    }

    /// The generation `run/current-system` points into ("24.05.N (Uakari)" of its store path).
    fn running(&self) -> String {
        std::fs::read_to_string(self.root.join("run/current-system/nixos-version"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

fn job(node: &str, resource: &str) -> String {
    format!(
        "apiVersion: labfleet/v1\nkind: Job\nmetadata: {{name: nixos}}\nspec:\n  selector: \
         \"node={node}\"\n  task:\n    config:\n      resources:\n        - nixosRebuild: {resource}\n"
    )
}

fn apply(c: &Cluster, spec: &str, extra: &[&str]) -> Output {
    let path = c.tmp.path().join("nixos.yaml");
    std::fs::write(&path, spec).unwrap();
    let mut args = vec!["apply", "-f", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    c.labctl(&args)
}

/// `labctl apply -o json`: the NDJSON events, and the one resource's result.
fn apply_json(c: &Cluster, spec: &str) -> (Option<i32>, Vec<Value>, Value) {
    let out = apply(c, spec, &["-o", "json"]);
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let result = events
        .iter()
        .map(|e| &e["task"]["result"]["config"]["resources"][0])
        .find(|r| !r.is_null())
        .cloned()
        .unwrap_or_else(|| panic!("no result: {events:?}\n{}", stderr(&out)));
    (out.status.code(), events, result)
}

/// Everything the task wrote to its output, in order.
fn output_text(events: &[Value]) -> String {
    serde_json::to_string(events).unwrap()
}

#[test]
fn health_gated_switch_rollback_and_refusals() {
    let mut c = Cluster::builder().agents(0).start();
    let fake = Fake::new(&c.tmp.path().join("fake"));
    let path = format!(
        "{}:{}",
        fake.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for name in ["n1", "n2"] {
        let mut agent = c.new_agent(name);
        let out = agent.enroll_output(&c.coord.addr, &c.token(&[]));
        assert!(out.status.success(), "{}", stderr(&out));
        if name == "n1" {
            agent.start_with_env(
                &[
                    "--facts-root",
                    fake.root.to_str().unwrap(),
                    "--facts-interval",
                    "1s",
                ],
                &[("PATH", &path)],
            );
        } else {
            agent.start();
        }
        c.agents.push(agent);
        c.wait_online(name, true, Duration::from_secs(20));
    }
    let health = "health: {argv: [check-web, --quiet], timeout: 5s, retries: 1, interval: 100ms}";

    // A healthy switch: new generation 42 kept; the output streamed as it ran.
    let (code, events, r) = apply_json(
        &c,
        &job("n1", &format!("{{flake: \"/etc/nixos#good\", {health}}}")),
    );
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["status"], "changed", "{r}");
    assert_eq!(r["nixos"]["generation_before"], 41, "{r}");
    assert_eq!(r["nixos"]["generation_after"], 42, "{r}");
    assert_eq!(r["nixos"]["health"], "passed", "{r}");
    assert_eq!(r["nixos"]["rolled_back"], false, "{r}");
    assert!(
        r["nixos"]["health_output"]
            .as_str()
            .unwrap()
            .contains("200 OK"),
        "{r}"
    );
    let streamed = output_text(&events);
    assert!(streamed.contains("activating generation 42"), "{streamed}");
    assert!(streamed.contains("health check attempt 1/2"), "{streamed}");
    assert_eq!(fake.profile(), "system-42-link");
    assert_eq!(fake.running(), "24.05.42 (Uakari)");
    assert!(fake
        .calls()
        .contains("nixos-rebuild switch --flake /etc/nixos#good"));

    // An unhealthy switch: both attempts fail, generation 43 is rolled back to 42.
    std::fs::write(&fake.log, "").unwrap();
    let (code, _, r) = apply_json(
        &c,
        &job("n1", &format!("{{flake: \"/etc/nixos#broken\", {health}}}")),
    );
    assert_eq!(code, Some(1), "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["nixos"]["generation_before"], 42, "{r}");
    assert_eq!(r["nixos"]["generation_after"], 42, "{r}");
    assert_eq!(r["nixos"]["health"], "failed", "{r}");
    assert_eq!(r["nixos"]["health_attempts"], 2, "{r}");
    assert_eq!(r["nixos"]["rolled_back"], true, "{r}");
    assert!(
        r["nixos"]["health_output"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{r}"
    );
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains("health check 'check-web --quiet' on all 2 attempts"),
        "{message}"
    );
    assert!(
        message.contains("rolled back to generation 42"),
        "{message}"
    );
    let calls = fake.calls();
    assert_eq!(calls.matches("check-web --quiet").count(), 2, "{calls}");
    assert!(
        calls.ends_with(&format!(
            "nix-env --profile {}/nix/var/nix/profiles/system --switch-generation 42\n",
            fake.root.display()
        )),
        "{calls}"
    );
    assert_eq!(fake.profile(), "system-42-link");
    assert_eq!(fake.running(), "24.05.42 (Uakari)");

    // A check that hangs is killed at its timeout and counts as failed. The rollback goes to
    // 42, the generation that ran before, not to 43 (the broken one `--rollback` would take).
    // Shown by labctl as people read it.
    let out = apply(
        &c,
        &job(
            "n1",
            "{flake: \"/etc/nixos#hang\", health: {argv: [check-web], timeout: 1s}}",
        ),
        &[],
    );
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    for want in [
        "n1 [stderr]: activating generation 44",
        "n1: nixosRebuild /etc/nixos#hang: failed: health check 'check-web' timed out after 1s; \
         rolled back to generation 42",
        "    nixos-rebuild switch --flake /etc/nixos#hang: generation 42 → 44\n    generation \
         42 → 42, rolled back\n    health check timed out (1 attempt)\n      \
         | GET http://localhost:8080/healthz\n",
    ] {
        assert!(text.contains(want), "{want}\n---\n{text}");
    }
    assert_eq!(fake.profile(), "system-42-link");

    // A failed build: no health check, nothing rolled back.
    std::fs::write(&fake.log, "").unwrap();
    let (code, _, r) = apply_json(
        &c,
        &job("n1", &format!("{{flake: \"/etc/nixos#fail\", {health}}}")),
    );
    assert_eq!(code, Some(1), "{r}");
    assert_eq!(r["nixos"]["health"], "not_run", "{r}");
    assert_eq!(r["nixos"]["rolled_back"], false, "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(message.contains("failed with exit code 1"), "{message}");
    assert!(
        message.contains("generation 42 is still active"),
        "{message}"
    );
    assert_eq!(
        fake.calls(),
        "nixos-rebuild switch --flake /etc/nixos#fail\n"
    );

    // The channel configuration, with --upgrade, no health gate: generation 45.
    let (code, _, r) = apply_json(&c, &job("n1", "{upgrade: true}"));
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["resource"], "nixosRebuild channel", "{r}");
    assert_eq!(r["nixos"]["generation_after"], 45, "{r}");
    assert!(fake.calls().ends_with("nixos-rebuild switch --upgrade\n"));

    // Explicit rollback to a named generation, then again: unchanged.
    std::fs::write(&fake.log, "").unwrap();
    let (code, _, r) = apply_json(&c, &job("n1", "{action: rollback, generation: 40}"));
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["status"], "changed", "{r}");
    assert_eq!(r["nixos"]["generation_before"], 45, "{r}");
    assert_eq!(r["nixos"]["generation_after"], 40, "{r}");
    assert_eq!(r["nixos"]["rolled_back"], true, "{r}");
    assert_eq!(
        fake.calls(),
        format!(
            "nix-env --profile {}/nix/var/nix/profiles/system --switch-generation 40\n",
            fake.root.display()
        )
    );
    assert_eq!(fake.profile(), "system-40-link");
    assert_eq!(
        fake.running(),
        "24.05.1 (Uakari)",
        "generation 40 was made as the first one"
    );
    let out = apply(&c, &job("n1", "{action: rollback, generation: 40}"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("generation 40 is already current"), "{text}");

    // The previous generation from 40: none older.
    let (code, _, r) = apply_json(&c, &job("n1", "{action: rollback}"));
    assert_eq!(code, Some(1), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("no generation older than the current one (40)"),
        "{r}"
    );
    // A generation that does not exist: nothing runs.
    std::fs::write(&fake.log, "").unwrap();
    let out = apply(&c, &job("n1", "{action: rollback, generation: 39}"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("generation 39 does not exist; the system profile has generations 40, 41, 42, 43, 44, 45"),
        "{text}"
    );
    assert_eq!(fake.calls(), "");

    // The facts, collected from the same tree by the same code, agree.
    wait_until(
        || {
            let out = c.labctl(&["node", "show", "n1", "-o", "json"]);
            let node: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            node["facts"]["nixos"]["generation"] == 40
        },
        Duration::from_secs(20),
        "n1's facts show generation 40",
    );

    // A node that is not NixOS: a clear error, nothing run.
    let (code, _, r) = apply_json(&c, &job("n2", "{flake: \"/etc/nixos#good\"}"));
    assert_eq!(code, Some(1), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("this node is not NixOS"),
        "{r}"
    );

    // Bad specs are refused before anything is submitted.
    for (resource, why) in [
        (
            "{flake: \"/etc/nixos#good\", health: {argv: [check-web]}}",
            "health.timeout is missing",
        ),
        (
            "{action: rollback, generation: -3}",
            "generation -3 is negative",
        ),
        (
            "{action: rollback, generation: 0}",
            "generation 0 is not a generation number",
        ),
        (
            "{flake: \"/etc/nixos#good\\u0007\"}",
            "is not a flake reference",
        ),
        (
            "{flake: \"/etc/nixos#good\", generation: 40}",
            "generation is only for action rollback",
        ),
        (
            "{action: boot, health: {argv: [check-web], timeout: 5s}}",
            "health is only for action switch",
        ),
    ] {
        let out = apply(&c, &job("n1", resource), &[]);
        assert_eq!(out.status.code(), Some(2), "{resource}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{resource}: {}", stderr(&out));
    }
    assert_eq!(fake.calls(), "", "nothing ran for refused specs");
}
