//! `labctl ui` in a real browser (Debian's headless `chromium`, driven over the DevTools
//! protocol): a coordinator with real agents, a real `labctl ui` process, and assertions on the
//! DOM of every page — node names and online state, the selector's caret error, a job's
//! per-node states and its output arriving live, a red backup shown red, pause and cancel
//! through the buttons. A viewer's dashboard has no controls and its direct POSTs get 403; a
//! request without the URL's secret gets 401; a cross-site POST is refused.
//!
//! Screenshots of every page, light and dark, land in `target/ui-screens/` for a reviewer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backup_util::Repo;
use lab_tests::browser::Browser;
use lab_tests::dashboard::Dashboard;
use lab_tests::{bin, labctl, stderr, wait_until, Cluster};
use serde_json::json;

/// `target/ui-screens/`.
fn screens() -> PathBuf {
    let labctl = bin("labctl");
    let target = labctl.parent().and_then(Path::parent).expect("target dir");
    target.join("ui-screens")
}

/// Light and dark screenshots of the page shown, as `NAME-light.png` and `NAME-dark.png`.
fn shots(b: &mut Browser, name: &str) {
    for (dark, scheme) in [(false, "light"), (true, "dark")] {
        b.color_scheme(dark);
        b.screenshot(&screens().join(format!("{name}-{scheme}.png")));
    }
    b.color_scheme(false);
}

/// Writes `text` to a file in the cluster's temp dir and returns its path.
fn file(c: &Cluster, name: &str, text: &str) -> String {
    let path = c.tmp.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `labctl run --detach ARGS -- sh -c SCRIPT` → job id.
fn run_detached(c: &Cluster, selector: &str, script: &str) -> String {
    let out = c.labctl(&["run", "--detach", "-l", selector, "--", "sh", "-c", script]);
    assert!(out.status.success(), "labctl run: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `labctl job show ID -o json`.
fn job_json(c: &Cluster, id: &str) -> serde_json::Value {
    let out = c.labctl(&["job", "show", id, "-o", "json"]);
    assert!(out.status.success(), "job show: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn schedule(c: &Cluster, name: &str) {
    let spec = file(
        c,
        &format!("{name}.yaml"),
        &format!("apiVersion: labfleet/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  selector: node=n1\n  task:\n    exec: {{argv: [uptime]}}\n"),
    );
    let out = c.labctl(&[
        "schedule",
        "create",
        name,
        "--cron",
        "0 3 * * *",
        "-f",
        &spec,
    ]);
    assert!(out.status.success(), "schedule create: {}", stderr(&out));
}

/// A backup named `name` on `node` of `path` with maxAge 26h, applied and followed.
fn backup(c: &Cluster, repo: &Repo, node: &str, name: &str, path: &Path) -> Option<i32> {
    let spec = file(
        c,
        &format!("backup-{name}.yaml"),
        &format!(
            "apiVersion: labfleet/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  selector: node={node}\n  task:\n    backup:\n      name: {name}\n      maxAge: 26h\n      restic: {{{}, paths: [{}]}}\n",
            repo.fields(),
            path.display()
        ),
    );
    c.labctl(&["apply", "-f", &spec]).status.code()
}

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn the_dashboard_shows_the_fleet_and_follows_a_job_live() {
    let mut c = Cluster::builder().agents(2).start();
    // Backups: n1's never succeeds (red), n2's does (green).
    let repo = Repo::init(c.tmp.path());
    let data = c.tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "hello").unwrap();
    assert_eq!(
        backup(&c, &repo, "n1", "db", &c.tmp.path().join("missing")),
        Some(1)
    );
    assert_eq!(backup(&c, &repo, "n2", "home", &data), Some(0));
    schedule(&c, "nightly");
    // n2 goes offline: listed first.
    c.agents[1].stop(false);
    c.wait_online("n2", false, WAIT);

    let ui = Dashboard::start(&c.coord.admin_config(), &c.tmp.path().join("ui.log"));
    let mut b = Browser::start(1280, 900);

    // Overview: the secret URL signs in and leaves the address bar.
    b.goto(&ui.url);
    assert_eq!(b.eval("location.href"), json!(format!("{}/", ui.base)));
    assert_eq!(
        b.eval("document.getElementById('nodes-online').textContent"),
        json!("1")
    );
    assert_eq!(
        b.eval("document.getElementById('nodes-total').textContent"),
        json!("2")
    );
    assert_eq!(
        b.eval("document.getElementById('backups-red').textContent"),
        json!("1 red")
    );
    // The OS and agent mix as the coordinator counted them (CountNodes), not from a listing.
    let os = b.eval("Array.from(document.querySelectorAll('#os-mix li')).map(l => l.textContent)");
    let os = os.as_array().unwrap();
    assert_eq!(os.len(), 1, "{os:?}");
    assert!(os[0].as_str().unwrap().starts_with("debian "), "{os:?}");
    assert!(os[0].as_str().unwrap().ends_with(" 2"), "{os:?}");
    assert_eq!(
        b.eval("document.querySelector('#agent-mix li b').textContent"),
        json!("2")
    );
    shots(&mut b, "overview");

    // Nodes: names and online state, offline first.
    b.goto(&format!("{}/nodes", ui.base));
    let rows = b.eval(
        "Array.from(document.querySelectorAll('#nodes tbody tr')).map(r => [r.dataset.node, r.dataset.status, r.querySelector('.badge').textContent])",
    );
    assert_eq!(
        rows,
        json!([["n2", "offline", "offline"], ["n1", "online", "online"]])
    );
    assert_eq!(
        b.eval("document.getElementById('nodes-summary').textContent"),
        json!("2 node(s), 1 not online")
    );
    shots(&mut b, "nodes");

    // Sort links ask the coordinator for that order: Name, then Name again for descending
    // (followed by address: a click that navigates can race the DevTools evaluation).
    let rows = "Array.from(document.querySelectorAll('#nodes tbody tr')).map(r => r.dataset.node).join(',')";
    let name = "document.querySelector('#nodes thead th:first-child')";
    for (expected, sorted) in [("n1,n2", "ascending"), ("n2,n1", "descending")] {
        let href = b.eval(&format!("{name}.querySelector('a').getAttribute('href')"));
        b.goto(&format!("{}{}", ui.base, href.as_str().unwrap()));
        assert_eq!(
            b.eval(&format!("{name}.getAttribute('aria-sort')")),
            json!(sorted)
        );
        assert_eq!(b.eval(rows), json!(expected), "{href}");
    }
    // A page past the end shows the last one; a selector narrows the count.
    b.goto(&format!(
        "{}/nodes?sort=seen&page=9&l=status%3Donline",
        ui.base
    ));
    assert_eq!(b.eval(rows), json!("n1"));
    let summary = b.eval("document.getElementById('nodes-summary').textContent");
    assert!(
        summary.as_str().unwrap().starts_with("1 node(s) matching"),
        "{summary}"
    );
    assert!(
        summary.as_str().unwrap().ends_with(", 0 not online"),
        "{summary}"
    );

    // The selector box with a typo shows labctl's error with the caret.
    b.eval("document.getElementById('l').value = 'role in (nas'; document.querySelector('form.selector').requestSubmit(); true");
    let error = b.wait_for(
        "document.getElementById('selector-error') && document.getElementById('selector-error').textContent",
        WAIT,
        "the selector error",
        "document.body.innerText",
    );
    let error = error.as_str().unwrap();
    assert!(error.contains("expected ',' or ')'"), "{error}");
    assert!(
        error.contains("role in (nas\n") && error.trim_end().ends_with('^'),
        "{error}"
    );
    shots(&mut b, "nodes-selector-error");

    // A node: labels, the fact tree and its search, its backups.
    b.goto(&format!("{}/nodes/n1", ui.base));
    assert!(b
        .eval("document.getElementById('labels').textContent")
        .as_str()
        .unwrap()
        .contains("node=n1"));
    b.eval("const s = document.getElementById('fact-search'); s.value = 'cpus'; s.dispatchEvent(new Event('input')); true");
    let hits = b.eval("document.querySelectorAll('#facts li.leaf.hit').length");
    assert!(hits.as_u64().unwrap() >= 1, "no fact matches 'cpus'");
    assert_eq!(
        b.eval("document.querySelector('#backups tr[data-health]').dataset.health"),
        json!("red")
    );
    // Its tasks, which the coordinator picks by node: the failed backup (n2's is not there).
    assert_eq!(
        b.eval("Array.from(document.querySelectorAll('#node-tasks tbody tr')).map(r => r.querySelector('.badge').textContent)"),
        json!(["failed"])
    );
    shots(&mut b, "node");

    // A job: n1 runs it (its first line is stored before the page opens), n2 is offline so its
    // task waits. A line printed while the page is open appears within 2 s.
    let go = c.tmp.path().join("go");
    let job = run_detached(
        &c,
        "",
        &format!(
            "echo started; while [ ! -e {} ]; do sleep 0.05; done; echo LIVE-LINE-42; sleep 120",
            go.display()
        ),
    );
    wait_until(
        || String::from_utf8_lossy(&c.labctl(&["job", "logs", &job]).stdout).contains("started"),
        WAIT,
        "the task's first line stored",
    );
    b.goto(&format!("{}/jobs/{job}", ui.base));
    b.wait_for(
        "document.querySelector('#tasks tr[data-node=\"n1\"]').dataset.state === 'running' && document.querySelector('#tasks tr[data-node=\"n2\"]').dataset.state === 'pending'",
        WAIT,
        "per-node states: n1 running, n2 pending",
        "document.getElementById('tasks').innerText",
    );
    let n1_out = "document.querySelector('#outputs details[data-task=\"' + document.querySelector('#tasks tr[data-node=\"n1\"]').dataset.task + '\"] pre').textContent";
    b.wait_for(
        &format!("{n1_out}.includes('started')"),
        WAIT,
        "stored output shown to a late viewer",
        n1_out,
    );
    std::fs::write(&go, "").unwrap();
    let printed = Instant::now();
    b.wait_for(
        &format!("{n1_out}.includes('LIVE-LINE-42')"),
        Duration::from_secs(2),
        "a live line on the job page within 2 s",
        n1_out,
    );
    eprintln!(
        "live line shown {:?} after the task could print it",
        printed.elapsed()
    );
    shots(&mut b, "job-running");

    // Cancel through the button (an operator's page has it): both tasks end.
    b.eval("window.confirm = () => true; document.querySelector('#job-actions form[action$=\"/cancel\"] button').click(); true");
    b.wait_for(
        "document.querySelector('#tasks tr[data-node=\"n1\"]') && document.querySelector('#tasks tr[data-node=\"n1\"]').dataset.state === 'cancelled' && document.querySelector('#tasks tr[data-node=\"n2\"]').dataset.state === 'skipped'",
        WAIT,
        "both tasks cancelled through the page",
        "location.href + ' ' + document.body.innerText",
    );
    b.wait_for(
        "document.querySelector('#job-state .badge').textContent === 'cancelled'",
        WAIT,
        "the job shown cancelled",
        "document.getElementById('job-state').innerText",
    );
    assert_eq!(job_json(&c, &job)["state"], "cancelled");
    shots(&mut b, "job-cancelled");

    // Jobs list, then "run again" makes a new job with the same task.
    b.goto(&format!("{}/jobs", ui.base));
    assert_eq!(
        b.eval(&format!(
            "document.getElementById('job-{job}').dataset.state"
        )),
        json!("cancelled")
    );
    shots(&mut b, "jobs");
    b.goto(&format!("{}/jobs/{job}", ui.base));
    b.eval("window.__leaving = true; window.confirm = () => true; document.querySelector('#job-actions form[action$=\"/rerun\"] button').click(); true");
    let again = b.wait_for(
        &format!("!window.__leaving && document.getElementById('job') && document.getElementById('job').dataset.job !== '{job}' && document.getElementById('job').dataset.job"),
        WAIT,
        "the new job's page",
        "location.href",
    );
    let again = again.as_str().unwrap().to_owned();
    assert_eq!(
        job_json(&c, &again)["command"],
        job_json(&c, &job)["command"]
    );
    assert!(c.labctl(&["job", "cancel", &again]).status.success());

    // Backups: the one that never succeeded is red, in the bar's colour too.
    b.goto(&format!("{}/backups", ui.base));
    let red = b.eval(
        "const r = document.querySelector('#backups tr[data-health=\"red\"]'); [r.cells[0].textContent, r.cells[1].textContent, getComputedStyle(r.querySelector('svg.agebar .fill')).fill, getComputedStyle(r.querySelector('.badge')).color]",
    );
    assert_eq!(red[0], "n1");
    assert_eq!(red[1], "db");
    assert_eq!(red[2], "rgb(198, 40, 40)", "the red bar is red: {red}");
    assert_eq!(red[3], "rgb(198, 40, 40)", "the red badge is red: {red}");
    assert_eq!(
        b.eval("document.querySelector('#backups tr[data-health=\"green\"]').cells[0].textContent"),
        json!("n2")
    );
    shots(&mut b, "backups");

    // Schedules: pause through the button.
    b.goto(&format!("{}/schedules", ui.base));
    assert_eq!(
        b.eval("document.getElementById('schedule-nightly').dataset.state"),
        json!("active")
    );
    b.eval("window.__leaving = true; document.querySelector('#schedule-nightly form[action$=\"/pause\"] button').click(); true");
    b.wait_for(
        "!window.__leaving && document.getElementById('schedule-nightly').dataset.state === 'paused' && !!document.querySelector('#schedule-nightly form[action$=\"/resume\"]')",
        WAIT,
        "the schedule paused",
        "document.body.innerText",
    );
    let listed = c.labctl(&["schedule", "list", "-o", "json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&listed.stdout).unwrap()[0]["paused"],
        true
    );
    shots(&mut b, "schedules");

    // Topology: the coordinator's topology (here every node is on no hypervisor), nodes clickable.
    b.goto(&format!("{}/topology", ui.base));
    let nodes = b.eval(
        "Array.from(document.querySelectorAll('#topology a.node')).map(a => a.dataset.node).sort()",
    );
    assert_eq!(nodes, json!(["n1", "n2"]));
    shots(&mut b, "topology");
    b.eval("window.__leaving = true; document.querySelector('#topology a.node[data-node=\"n1\"]').dispatchEvent(new MouseEvent('click', {bubbles: true})); true");
    b.wait_for(
        "!window.__leaving && location.pathname === '/nodes/n1'",
        WAIT,
        "the node page from the picture",
        "location.href",
    );

    // On a phone.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    );
    b.goto(&format!("{}/", ui.base));
    shots(&mut b, "overview-phone");
    // Nothing on the page is wider than the phone but the tables' own scroll boxes.
    assert_eq!(
        b.eval("document.documentElement.scrollWidth <= 390"),
        json!(true)
    );
}

#[test]
fn viewers_cannot_act_and_strangers_cannot_get_in() {
    let c = Cluster::builder().agents(1).start();
    schedule(&c, "tick");
    let job = run_detached(&c, "node=n1", "sleep 120");
    let viewer_cfg = c.tmp.path().join("viewer.toml");
    let out = c.labctl(&[
        "user",
        "create",
        "vera",
        "--role",
        "viewer",
        "--out",
        viewer_cfg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let admin = Dashboard::start(&c.coord.admin_config(), &c.tmp.path().join("ui-admin.log"));
    let viewer = Dashboard::start(&viewer_cfg, &c.tmp.path().join("ui-viewer.log"));
    let cancel = format!("/jobs/{job}/cancel");
    let untouched = |what: &str| {
        assert_eq!(
            job_json(&c, &job)["state"],
            "running",
            "{what} changed the job"
        );
        let listed = labctl(&c.coord.admin_config(), &["schedule", "list", "-o", "json"]);
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(listed[0]["paused"], false, "{what} paused the schedule");
    };

    // Without the secret: 401, for pages, assets, events and actions alike.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nodes"),
        ("GET", "/assets/ui.js"),
        ("GET", &format!("/jobs/{job}/events")),
        ("POST", cancel.as_str()),
    ] {
        let a = admin.request(method, path, &[], "");
        assert_eq!(a.status, 401, "{method} {path}: {a:?}");
        assert!(a.body.contains("secret URL"), "{}", a.body);
    }
    assert_eq!(admin.request("GET", "/?token=0000", &[], "").status, 401);
    assert_eq!(
        admin
            .request("GET", "/", &[("Cookie", "labctl_ui_1=guess")], "")
            .status,
        401
    );
    // A cookie of this run, but another host name (DNS rebinding): refused.
    let cookie = admin.cookie();
    let csrf = admin.csrf(&cookie);
    let mut a = admin.request(
        "GET",
        "/",
        &[("Cookie", &cookie), ("Host", "evil.example")],
        "",
    );
    assert_eq!(a.status, 421, "{a:?}");

    // Cross-site POSTs: without the CSRF token, or from another origin with it: refused.
    let form = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    a = admin.request("POST", &cancel, &form, "");
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("CSRF"), "{}", a.body);
    a = admin.request("POST", &cancel, &form, "csrf=0123");
    assert_eq!(a.status, 403, "{a:?}");
    let mut cross = form.to_vec();
    cross.push(("Origin", "http://evil.example"));
    a = admin.request("POST", &cancel, &cross, &format!("csrf={csrf}"));
    assert_eq!(a.status, 403, "{a:?}");
    untouched("a cross-site POST");

    // In a browser with a session: a page elsewhere posting a form to the dashboard is refused
    // (the SameSite=Strict cookie is not sent with it).
    let mut b = Browser::start(1280, 900);
    b.goto(&admin.url);
    let attack = format!(
        "data:text/html,<form method=post action='{}{cancel}'><input name=csrf value=x></form><script>document.forms[0].submit()</script>",
        admin.base
    );
    b.goto(&attack);
    b.wait_for(
        "document.body && document.body.innerText.includes('401')",
        WAIT,
        "the forged POST refused",
        "location.href + ' ' + (document.body && document.body.innerText)",
    );
    untouched("a forged form in the browser");

    // The viewer's dashboard shows everything and offers nothing to press.
    b.goto(&viewer.url);
    assert!(b
        .eval("document.querySelector('.who').textContent")
        .as_str()
        .unwrap()
        .contains("viewer"));
    b.goto(&format!("{}/jobs/{job}", viewer.base));
    assert_eq!(
        b.eval("document.querySelectorAll('#job-actions, form[method=post]').length"),
        json!(0)
    );
    assert_eq!(
        b.eval("!!document.getElementById('read-only')"),
        json!(true)
    );
    b.goto(&format!("{}/schedules", viewer.base));
    assert_eq!(
        b.eval("document.getElementById('schedule-tick').dataset.state"),
        json!("active")
    );
    assert_eq!(
        b.eval("document.querySelectorAll('form[method=post]').length"),
        json!(0)
    );
    shots(&mut b, "schedules-viewer");

    // …and the endpoints refuse the viewer even with a valid session and CSRF token: 403.
    let cookie = viewer.cookie();
    let csrf = viewer.csrf(&cookie);
    let form = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    for path in [
        cancel.clone(),
        format!("/jobs/{job}/rerun"),
        "/schedules/tick/pause".into(),
    ] {
        let a = viewer.request("POST", &path, &form, &format!("csrf={csrf}"));
        assert_eq!(a.status, 403, "viewer POST {path}: {a:?}");
        assert!(a.body.contains("viewer"), "{path}: {}", a.body);
    }
    untouched("the viewer");
    assert_eq!(
        String::from_utf8_lossy(&c.labctl(&["jobs", "-o", "name"]).stdout)
            .lines()
            .count(),
        1,
        "the viewer's run again submitted a job"
    );

    // The admin's own token from its own origin works (the refusals above were not blanket).
    let cookie = admin.cookie();
    let mut same = vec![
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let origin = admin.base.clone();
    same.push(("Origin", &origin));
    let a = admin.request(
        "POST",
        &cancel,
        &same,
        &format!("csrf={csrf_admin}", csrf_admin = admin.csrf(&cookie)),
    );
    assert_eq!(a.status, 303, "{a:?}");
    wait_until(
        || job_json(&c, &job)["state"] == "cancelled",
        WAIT,
        "the job cancelled by the admin's POST",
    );
}
