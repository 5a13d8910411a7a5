//! Unit tests of the `ensure` spec: parsing, validation, hashing.

use std::collections::HashMap;

use super::*;

fn ensure() -> ContainerEnsure {
    ContainerEnsure {
        name: "web".into(),
        image: "busybox:lab".into(),
        command: vec!["httpd".into(), "-f".into()],
        env: HashMap::from([("A".into(), "1".into()), ("B".into(), "2".into())]),
        ports: vec!["8080:80".into(), "5353:53/udp".into()],
        volumes: vec!["/srv/www:/www:ro".into(), "data:/data".into()],
        restart: RestartPolicy::UnlessStopped as i32,
        labels: HashMap::from([("team".into(), "lab".into())]),
    }
}

#[test]
fn parses_a_full_spec() {
    let d = Desired::try_from(&ensure()).unwrap();
    assert_eq!(d.name, "web");
    assert_eq!(d.restart, Restart::UnlessStopped);
    assert_eq!(d.env_list(), vec!["A=1", "B=2"]);
    let ports: Vec<String> = d.ports.iter().map(ToString::to_string).collect();
    assert_eq!(ports, vec!["5353:53/udp", "8080:80/tcp"]);
    let binds: Vec<String> = d.volumes.iter().map(Volume::bind).collect();
    assert_eq!(binds, vec!["/srv/www:/www:ro", "data:/data"]);
    let labels = d.all_labels();
    assert_eq!(labels["team"], "lab");
    assert_eq!(labels[MANAGED_LABEL], "true");
    assert_eq!(labels[HASH_LABEL].len(), 64);
}

#[test]
fn ports() {
    let p = PortMapping::parse("127.0.0.1:8080:80/tcp").unwrap();
    assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!((p.host_port, p.container_port), (8080, 80));
    assert_eq!(p.container_key(), "80/tcp");
    assert_eq!(
        PortMapping::parse("53:53/udp").unwrap().protocol,
        Protocol::Udp
    );
    for bad in [
        "80",
        "0:80",
        "x:80",
        "80:70000",
        "80:80/sctp",
        ":80:80",
        "1:2:3:4",
        "",
    ] {
        assert_eq!(
            PortMapping::parse(bad),
            Err(SpecError::Port(bad.into())),
            "{bad}"
        );
    }
}

#[test]
fn volumes() {
    assert!(!Volume::parse("/a:/b:rw").unwrap().read_only);
    for bad in ["/a", "/a:b", ":/b", "/a:/b:rx", "/a:/b:ro:x"] {
        assert_eq!(
            Volume::parse(bad),
            Err(SpecError::Volume(bad.into())),
            "{bad}"
        );
    }
}

#[test]
fn rejects_bad_specs() {
    let mut e = ensure();
    e.name = " ".into();
    assert_eq!(
        Desired::try_from(&e),
        Err(SpecError::Missing("container name"))
    );
    let mut e = ensure();
    e.image.clear();
    assert_eq!(Desired::try_from(&e), Err(SpecError::Missing("image")));
    let mut e = ensure();
    e.restart = 99;
    assert_eq!(Desired::try_from(&e), Err(SpecError::Restart(99)));
    let mut e = ensure();
    e.labels.insert(HASH_LABEL.into(), "x".into());
    assert!(matches!(
        Desired::try_from(&e),
        Err(SpecError::ReservedLabel(_))
    ));
    let mut e = ensure();
    e.env.insert("A=B".into(), "x".into());
    assert_eq!(Desired::try_from(&e), Err(SpecError::EnvName("A=B".into())));
    let mut e = ensure();
    e.ports.push("nope".into());
    let msg = Desired::try_from(&e).unwrap_err().to_string();
    assert!(msg.contains("'nope'"), "{msg}");
}

#[test]
fn unspecified_restart_is_no() {
    let mut e = ensure();
    e.restart = RestartPolicy::Unspecified as i32;
    let unspecified = Desired::try_from(&e).unwrap();
    e.restart = RestartPolicy::No as i32;
    let no = Desired::try_from(&e).unwrap();
    assert_eq!(unspecified.config_hash(), no.config_hash());
}

#[test]
fn hash_ignores_order_and_sees_every_field() {
    let base = Desired::try_from(&ensure()).unwrap();
    let mut reordered = ensure();
    reordered.ports.reverse();
    reordered.volumes.reverse();
    let reordered = Desired::try_from(&reordered).unwrap();
    assert_eq!(base.config_hash(), reordered.config_hash());

    type Change = fn(&mut ContainerEnsure);
    let changes: Vec<(&str, Change)> = vec![
        ("image", |e| e.image = "busybox:other".into()),
        ("command", |e| e.command.push("-v".into())),
        ("env", |e| {
            e.env.insert("A".into(), "changed".into());
        }),
        ("ports", |e| {
            e.ports.pop();
        }),
        ("volumes", |e| e.volumes[0] = "/srv/www:/www".into()),
        ("restart", |e| e.restart = RestartPolicy::Always as i32),
        ("labels", |e| {
            e.labels.insert("x".into(), "y".into());
        }),
    ];
    for (field, change) in changes {
        let mut e = ensure();
        change(&mut e);
        let changed = Desired::try_from(&e).unwrap();
        assert_ne!(changed.config_hash(), base.config_hash(), "{field}");
        assert_eq!(
            changed_fields(&base.field_digests(), &changed.field_digests()),
            vec![field.to_owned()]
        );
    }
}

#[test]
fn changed_fields_without_stored_digests_is_empty() {
    let d = Desired::try_from(&ensure()).unwrap();
    assert!(changed_fields("", &d.field_digests()).is_empty());
    assert!(changed_fields(&d.field_digests(), &d.field_digests()).is_empty());
}
