//! Service resources: a systemd unit's running state (running, stopped, restarted, reloaded)
//! and whether it is enabled.
//!
//! The unit's state comes from one `systemctl show` (LoadState, ActiveState, SubState,
//! UnitFileState, NeedDaemonReload); [`plan`] (pure) turns it and the spec into systemctl
//! actions: `daemon-reload` if the unit file changed on disk, then `enable`/`disable`, then
//! `start`/`stop`/`restart`/`reload` (`reloaded` starts an inactive unit). The result's message
//! is the unit's state afterwards, e.g. "active (running), enabled".
//!
//! Check mode only runs `systemctl show`; `restarted` and `reloaded` always report "would
//! restart"/"would reload". Without systemd as the init system (`/run/systemd/system` missing)
//! the resource fails.

use lab_proto::v1::{ServiceResource, ServiceState};

use super::process::{self, Cmd};
use super::{Cx, Report};

/// What the resource says when systemd is not the init system.
pub const NO_SYSTEMD_MESSAGE: &str = "systemd is not running on this node (/run/systemd/system is missing); service resources need systemd";

/// Desired running state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Leave it alone.
    Any,
    /// Active.
    Running,
    /// Inactive.
    Stopped,
    /// Restart now (start if stopped).
    Restarted,
    /// Reload now (start if stopped).
    Reloaded,
}

/// A service resource, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Unit name, e.g. `nginx.service`.
    pub unit: String,
    /// Desired running state.
    pub want: Want,
    /// Desired enablement; `None` = leave it alone.
    pub enabled: Option<bool>,
}

/// Whether `unit` is a plausible systemd unit name.
pub fn valid_unit(unit: &str) -> bool {
    !unit.is_empty()
        && unit.len() <= 256
        && !unit.starts_with('-')
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c))
}

impl TryFrom<ServiceResource> for ServiceSpec {
    type Error = String;
    fn try_from(s: ServiceResource) -> Result<Self, String> {
        let ServiceResource {
            unit,
            state,
            enabled,
        } = s;
        if !valid_unit(&unit) {
            return Err(format!(
                "invalid unit name '{}'; use a systemd unit name such as nginx.service",
                unit.escape_debug()
            ));
        }
        let want = match ServiceState::try_from(state) {
            Ok(ServiceState::Unspecified) => Want::Any,
            Ok(ServiceState::Running) => Want::Running,
            Ok(ServiceState::Stopped) => Want::Stopped,
            Ok(ServiceState::Restarted) => Want::Restarted,
            Ok(ServiceState::Reloaded) => Want::Reloaded,
            Err(_) => return Err(format!("unknown service state {state}; upgrade the agent")),
        };
        Ok(ServiceSpec {
            unit,
            want,
            enabled,
        })
    }
}

/// A unit's state as `systemctl show` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    /// loaded, not-found, masked, ...
    pub load: String,
    /// active, inactive, failed, activating, ...
    pub active: String,
    /// running, dead, exited, ...
    pub sub: String,
    /// enabled, disabled, static, masked, ... (empty for units without a file)
    pub file_state: String,
    /// The unit file changed on disk since systemd loaded it.
    pub need_daemon_reload: bool,
}

impl UnitState {
    /// Parses `systemctl show --property=...` output (`Key=value` lines).
    pub fn parse(output: &str) -> Self {
        let mut s = UnitState::default();
        for line in output.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().to_owned();
            match key {
                "LoadState" => s.load = value,
                "ActiveState" => s.active = value,
                "SubState" => s.sub = value,
                "UnitFileState" => s.file_state = value,
                "NeedDaemonReload" => s.need_daemon_reload = value == "yes",
                _ => {}
            }
        }
        s
    }

    /// "active (running), enabled".
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({})", self.active, self.sub);
        if !self.file_state.is_empty() {
            s.push_str(", ");
            s.push_str(&self.file_state);
        }
        s
    }

    fn is_up(&self) -> bool {
        matches!(
            self.active.as_str(),
            "active" | "activating" | "reloading" | "refreshing"
        )
    }
}

/// One systemctl verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `daemon-reload`
    DaemonReload,
    /// `enable`
    Enable,
    /// `disable`
    Disable,
    /// `start`
    Start,
    /// `stop`
    Stop,
    /// `restart`
    Restart,
    /// `reload`
    Reload,
}

impl Action {
    /// The systemctl verb.
    pub fn verb(self) -> &'static str {
        match self {
            Action::DaemonReload => "daemon-reload",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Reload => "reload",
        }
    }
}

/// The systemctl actions that bring a unit in `state` to `spec`, in order.
pub fn plan(spec: &ServiceSpec, state: &UnitState) -> Result<Vec<Action>, String> {
    let unit = &spec.unit;
    let wants_up = matches!(spec.want, Want::Running | Want::Restarted | Want::Reloaded);
    let wants_enabled = spec.enabled == Some(true);
    if state.load == "not-found" {
        if wants_up || wants_enabled {
            return Err(format!(
                "unit {unit} not found; install it or check the name"
            ));
        }
        return Ok(vec![]); // a missing unit is stopped and disabled
    }
    if (state.load == "masked" || state.file_state.starts_with("masked"))
        && (wants_up || wants_enabled)
    {
        return Err(format!(
            "unit {unit} is masked; unmask it first (systemctl unmask {unit})"
        ));
    }
    let mut actions = Vec::new();
    if state.need_daemon_reload {
        actions.push(Action::DaemonReload);
    }
    match spec.enabled {
        Some(true)
            if !matches!(
                state.file_state.as_str(),
                "enabled"
                    | "enabled-runtime"
                    | "static"
                    | "alias"
                    | "indirect"
                    | "generated"
                    | "transient"
            ) =>
        {
            actions.push(Action::Enable)
        }
        Some(false) if matches!(state.file_state.as_str(), "enabled" | "enabled-runtime") => {
            actions.push(Action::Disable)
        }
        _ => {}
    }
    match spec.want {
        Want::Any => {}
        Want::Running if !state.is_up() => actions.push(Action::Start),
        Want::Stopped if state.is_up() => actions.push(Action::Stop),
        Want::Running | Want::Stopped => {}
        Want::Restarted => actions.push(Action::Restart),
        Want::Reloaded if state.active == "active" => actions.push(Action::Reload),
        Want::Reloaded => actions.push(Action::Start),
    }
    Ok(actions)
}

async fn show(cx: &mut Cx<'_>, unit: &str) -> Result<UnitState, String> {
    let cmd = Cmd::new(&[
        "systemctl",
        "show",
        "--property=LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload",
        unit,
    ]);
    let ran = process::run(cx, cmd).await;
    if !ran.success() {
        return Err(ran.failure());
    }
    Ok(UnitState::parse(&ran.stdout_text()))
}

/// Applies (or checks) `spec`.
pub async fn apply(spec: &ServiceSpec, cx: &mut Cx<'_>) -> Report {
    if !cx.root.join("run/systemd/system").is_dir() {
        return Report::failed(NO_SYSTEMD_MESSAGE);
    }
    let unit = spec.unit.as_str();
    let before = match show(cx, unit).await {
        Ok(s) => s,
        Err(e) => return Report::failed(e),
    };
    let actions = match plan(spec, &before) {
        Ok(a) => a,
        Err(e) => return Report::failed(e),
    };
    if actions.is_empty() {
        return Report::unchanged(before.describe());
    }
    let verbs: Vec<&str> = actions.iter().map(|a| a.verb()).collect();
    if cx.check {
        let would: Vec<String> = verbs.iter().map(|v| format!("would {v}")).collect();
        return Report::changed(would.join(", "), before.describe());
    }
    for action in &actions {
        let argv: Vec<&str> = match action {
            Action::DaemonReload => vec!["systemctl", "daemon-reload"],
            a => vec!["systemctl", a.verb(), unit],
        };
        let ran = process::run(cx, Cmd::new(&argv).streamed()).await;
        if !ran.success() {
            let mut msg = ran.failure();
            if let Ok(after) = show(cx, unit).await {
                msg.push_str(&format!("; the unit is now {}", after.describe()));
            }
            return Report::failed(msg);
        }
    }
    let after = match show(cx, unit).await {
        Ok(s) => s.describe(),
        Err(e) => e,
    };
    Report::changed(verbs.join(", "), after)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(want: Want, enabled: Option<bool>) -> ServiceSpec {
        ServiceSpec {
            unit: "nginx.service".into(),
            want,
            enabled,
        }
    }

    fn state(active: &str, file_state: &str) -> UnitState {
        UnitState {
            load: "loaded".into(),
            active: active.into(),
            sub: if active == "active" {
                "running"
            } else {
                "dead"
            }
            .into(),
            file_state: file_state.into(),
            need_daemon_reload: false,
        }
    }

    #[test]
    fn parses_systemctl_show() {
        let s = UnitState::parse(
            "LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nNeedDaemonReload=no\n",
        );
        assert_eq!(s, state("active", "enabled"));
        assert_eq!(s.describe(), "active (running), enabled");
        assert_eq!(
            UnitState::parse(
                "LoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n"
            )
            .describe(),
            "inactive (dead)"
        );
    }

    #[test]
    fn plans() {
        use Action::*;
        let p = |w, e, s: &UnitState| plan(&spec(w, e), s).unwrap();
        assert_eq!(
            p(Want::Running, Some(true), &state("active", "enabled")),
            []
        );
        assert_eq!(
            p(Want::Running, Some(true), &state("inactive", "disabled")),
            [Enable, Start]
        );
        assert_eq!(p(Want::Running, None, &state("failed", "enabled")), [Start]);
        assert_eq!(
            p(Want::Stopped, Some(false), &state("active", "enabled")),
            [Disable, Stop]
        );
        assert_eq!(p(Want::Stopped, None, &state("inactive", "enabled")), []);
        assert_eq!(p(Want::Restarted, None, &state("active", "")), [Restart]);
        assert_eq!(p(Want::Reloaded, None, &state("active", "")), [Reload]);
        assert_eq!(p(Want::Reloaded, None, &state("inactive", "")), [Start]);
        assert_eq!(p(Want::Any, Some(true), &state("inactive", "static")), []);
        let mut stale = state("active", "enabled");
        stale.need_daemon_reload = true;
        assert_eq!(p(Want::Restarted, None, &stale), [DaemonReload, Restart]);
    }

    #[test]
    fn missing_and_masked_units() {
        let mut missing = state("inactive", "");
        missing.load = "not-found".into();
        assert!(plan(&spec(Want::Running, None), &missing)
            .unwrap_err()
            .contains("not found"));
        assert_eq!(
            plan(&spec(Want::Stopped, Some(false)), &missing),
            Ok(vec![])
        );
        let masked = state("inactive", "masked");
        assert!(plan(&spec(Want::Any, Some(true)), &masked)
            .unwrap_err()
            .contains("masked"));
    }

    #[test]
    fn validation() {
        assert!(valid_unit("nginx.service") && valid_unit("getty@tty1.service"));
        for bad in ["", "-x", "a b", "a/b", "a;b"] {
            assert!(!valid_unit(bad), "{bad}");
        }
        assert!(ServiceSpec::try_from(ServiceResource {
            unit: "x.service".into(),
            state: 99,
            enabled: None
        })
        .is_err());
    }
}
