# Evaluates the NixOS modules in deploy/nixos/ with tests/nix/stub-lib.nix (no nixpkgs offline)
# for a few configurations and checks what they render: option types and defaults, the units'
# commands, enrollment through LoadCredential, assertions. Run by deploy/check-nix:
#   nix-instantiate --eval --strict tests/nix/modules.nix
# It prints the number of checks passed; a failed check aborts naming it.
let
  lib = import ./stub-lib.nix;
  pkgs = {
    callPackage = _: args: {
      outPath = "/nix/store/0000-${args.crate}";
      meta.mainProgram = args.crate;
    };
    writeShellScript = name: text: {
      outPath = "/nix/store/0000-${name}";
      inherit text;
    };
    formats.toml = _: {
      generate = name: value: {
        outPath = "/nix/store/0000-${name}";
        inherit value;
      };
    };
  };

  # Fills each declared option from `settings` (checked against its type) or its default; a
  # setting the module does not declare, or of the wrong type, aborts.
  evalOptions =
    decls: settings:
    assert builtins.all (
      n: decls ? ${n} || throw "setting ${n} is not an option of the module"
    ) (builtins.attrNames settings);
    builtins.mapAttrs (
      name: opt:
      if settings ? ${name} then
        if opt.type.check settings.${name} then
          settings.${name}
        else
          throw "option ${name}: value is not of type ${opt.type.name}"
      else if opt ? default then
        opt.default
      else
        throw "option ${name} has no default and was not set"
    ) decls;

  # mkIf anywhere in a config: kept when its condition holds, dropped otherwise.
  resolve =
    v:
    if builtins.isAttrs v && (v._type or null) == "if" then
      (if v.condition then resolve v.content else null)
    else if builtins.isAttrs v && !(v ? outPath) then
      let
        r = builtins.mapAttrs (_: resolve) v;
      in
      builtins.removeAttrs r (builtins.filter (n: r.${n} == null) (builtins.attrNames r))
    else
      v;

  # Evaluates `module` with services.${svc} = settings; returns its config (mkIf resolved) and
  # the failed assertions' messages.
  evalModule =
    module: svc: settings:
    let
      declared = (module { config = { }; inherit lib pkgs; }).options.services.${svc};
      cfg = evalOptions declared settings;
      result = module {
        config.services.${svc} = cfg;
        inherit lib pkgs;
      };
      conf = if result.config.condition then resolve result.config.content else { };
    in
    {
      inherit cfg conf;
      failed = map (a: a.message) (builtins.filter (a: !a.assertion) (conf.assertions or [ ]));
    };

  agent = import ../../deploy/nixos/agent.nix;
  coordinator = import ../../deploy/nixos/coordinator.nix;
  has = needle: haystack: builtins.match ".*${needle}.*" haystack != null;

  a1 = evalModule agent "lab-agent" {
    enable = true;
    coordinator = "10.0.0.5:7443";
    tokenFile = "/run/secrets/lab token";
    labels.role = "storage";
    extraArgs = [ "--max-tasks" "4" ];
  };
  a1run = a1.conf.systemd.services.lab-agent;
  a1enroll = a1.conf.systemd.services.lab-agent-enroll;
  a2 = evalModule agent "lab-agent" {
    enable = true;
    dataDir = "/srv/lab-agent";
  };
  a3 = evalModule agent "lab-agent" {
    enable = true;
    coordinator = "c:7443";
    tokenFile = "/nix/store/abc-token";
  };
  a4 = evalModule agent "lab-agent" {
    enable = true;
    coordinator = [ "a:7443" "b:7443" ];
    tokenFile = "/run/secrets/t";
  };
  aOff = evalModule agent "lab-agent" { };
  # a path literal is refused by tokenFile's type (it would copy the secret into the store)
  aPath = builtins.tryEval (evalModule agent "lab-agent" {
    enable = true;
    coordinator = "c:7443";
    tokenFile = ./modules.nix;
  }).cfg.tokenFile;

  c1 = evalModule coordinator "lab-coordinator" {
    enable = true;
    advertise = "10.0.0.5:7443";
    trustDomain = "home.lab";
    openFirewall = true;
    listen = "[::]:7443";
  };
  c1svc = c1.conf.systemd.services.lab-coordinator;
  cBadCache = builtins.tryEval (evalModule coordinator "lab-coordinator" {
    enable = true;
    advertise = "x:7443";
    storeCacheMiB = 4;
  }).cfg.storeCacheMiB;

  cEtcd = evalModule coordinator "lab-coordinator" {
    enable = true;
    advertise = "10.0.0.6:7443";
    store = "etcd://10.0.0.11:2379,10.0.0.12:2379";
    etcdCaFile = "/etc/etcd/ca.pem";
    etcdCertFile = "/etc/etcd/client.pem";
    etcdKeyFile = "/run/secrets/etcd.key";
    leaderTtl = "3s";
  };
  cEtcdSvc = cEtcd.conf.systemd.services.lab-coordinator;
  cJoin = evalModule coordinator "lab-coordinator" {
    enable = true;
    advertise = "10.0.0.6:7443";
    store = "etcd://10.0.0.11:2379";
    joinKeyFile = "/run/secrets/join.key";
  };
  cJoinSled = evalModule coordinator "lab-coordinator" {
    enable = true;
    advertise = "10.0.0.6:7443";
    joinKeyFile = "/nix/store/abc-join.key";
  };
  cBadStore = evalModule coordinator "lab-coordinator" {
    enable = true;
    advertise = "x:7443";
    store = "postgres://db";
    etcdCertFile = "/c.pem";
  };

  checks = {
    "agent: no assertion fails" = a1.failed == [ ];
    "agent: disabled renders nothing" = aOff.conf == { };
    "agent: run command" =
      a1run.serviceConfig.ExecStart
      == "/nix/store/0000-lab-agent/bin/lab-agent run --data-dir '/var/lib/lab-agent' '--max-tasks' '4'";
    "agent: waits for its identity" = a1run.unitConfig.ConditionPathExists == "/var/lib/lab-agent/node.pem";
    "agent: requires the enroll unit" =
      a1run.requires == [ "lab-agent-enroll.service" ]
      && builtins.elem "lab-agent-enroll.service" a1run.after;
    "agent: no restart on revocation" = a1run.serviceConfig.RestartPreventExitStatus == 4;
    "agent: state directory" = a1run.serviceConfig.StateDirectory == "lab-agent";
    "agent: labels file" = a1.conf.environment.etc."lab/agent.toml".source.value == {
      labels.role = "storage";
    };
    "enroll: only without identity" = a1enroll.unitConfig.ConditionPathExists == "!/var/lib/lab-agent/node.pem";
    "enroll: token by credential, path as given" =
      a1enroll.serviceConfig.LoadCredential == "token:/run/secrets/lab token";
    "enroll: oneshot" = a1enroll.serviceConfig.Type == "oneshot";
    "enroll: script reads the credential" = has "LAB_TOKEN=\\$\\(cat \"\\$token_file\"\\)" a1enroll.serviceConfig.ExecStart.text;
    "enroll: script enrolls to the coordinator" =
      has "lab-agent enroll.*--coordinator '10.0.0.5:7443'.*--data-dir '/var/lib/lab-agent'" (
        builtins.replaceStrings [ "\n" "\\" ] [ " " " " ] a1enroll.serviceConfig.ExecStart.text
      );
    "agent: the coordinator list replaces the enrolled one on every start" =
      a1run.environment == { LAB_COORDINATOR = "10.0.0.5:7443"; }
      && a4.conf.systemd.services.lab-agent.environment == { LAB_COORDINATOR = "a:7443,b:7443"; };
    "enroll: a list of coordinators is one comma list" =
      a4.failed == [ ]
      && has "--coordinator 'a:7443,b:7443'" a4.conf.systemd.services.lab-agent-enroll.serviceConfig.ExecStart.text;
    "agent: without coordinator no environment" = a2.conf.systemd.services.lab-agent.environment == { };
    "agent: without tokenFile no enroll unit" =
      !(a2.conf.systemd.services ? lab-agent-enroll) && a2.conf.systemd.services.lab-agent.requires == [ ];
    "agent: dataDir outside /var/lib via tmpfiles" =
      a2.conf.systemd.tmpfiles.rules == [ "d /srv/lab-agent 0700 root root - -" ]
      && !(a2.conf.systemd.services.lab-agent.serviceConfig ? StateDirectory);
    "agent: tokenFile in the store is refused" = builtins.length a3.failed == 1 && has "Nix store" (builtins.head a3.failed);
    "agent: tokenFile as a path literal is refused" = !aPath.success;

    "coordinator: no assertion fails" = c1.failed == [ ];
    "coordinator: sled by default, no credentials" =
      !(c1svc.environment ? LAB_STORE) && c1svc.serviceConfig.LoadCredential == [ ];
    "coordinator: a standby may wait to start" = c1svc.serviceConfig.TimeoutStartSec == "infinity";
    "coordinator etcd: no assertion fails" = cEtcd.failed == [ ];
    "coordinator join: first start joins with the key by credential" =
      cJoin.failed == [ ]
      && builtins.elem "join-key:/run/secrets/join.key" cJoin.conf.systemd.services.lab-coordinator.serviceConfig.LoadCredential
      && has "join --data-dir '/var/lib/lab-coordinator'.*--advertise '10.0.0.6:7443'.*--join-key \"\\$CREDENTIALS_DIRECTORY/join-key\"" (
        builtins.replaceStrings [ "\n" "\\" ] [ " " " " ] cJoin.conf.systemd.services.lab-coordinator.serviceConfig.ExecStartPre.text
      );
    "coordinator join: needs etcd, never a key in the store" = builtins.length cJoinSled.failed == 2;
    "coordinator: without joinKeyFile the first start inits" =
      has "lab-coordinator init --data-dir" c1svc.serviceConfig.ExecStartPre.text;
    "coordinator etcd: store, prefix, ttl and TLS files by credential" =
      cEtcdSvc.environment.LAB_STORE == "etcd://10.0.0.11:2379,10.0.0.12:2379"
      && cEtcdSvc.environment.LAB_ETCD_PREFIX == "/labfleet/"
      && cEtcdSvc.environment.LAB_LEADER_TTL == "3s"
      && cEtcdSvc.environment.LAB_ETCD_CA == "%d/etcd-ca"
      && cEtcdSvc.environment.LAB_ETCD_KEY == "%d/etcd-key"
      && cEtcdSvc.serviceConfig.LoadCredential == [
        "etcd-ca:/etc/etcd/ca.pem"
        "etcd-cert:/etc/etcd/client.pem"
        "etcd-key:/run/secrets/etcd.key"
      ];
    "coordinator etcd: bad store and a lone cert are refused" = builtins.length cBadStore.failed == 2;
    "coordinator: own user, notify" =
      c1svc.serviceConfig.User == "lab-coordinator" && c1svc.serviceConfig.Type == "notify";
    "coordinator: environment" =
      c1svc.environment == {
        LAB_DATA_DIR = "/var/lib/lab-coordinator";
        LAB_LISTEN = "[::]:7443";
        LAB_STORE_CACHE_MIB = "128";
      };
    "coordinator: firewall port from listen" = c1.conf.networking.firewall.allowedTCPPorts == [ 7443 ];
    "coordinator: init once" =
      has "ca.key.*init --data-dir '/var/lib/lab-coordinator'.*--advertise '10.0.0.5:7443'.*--trust-domain 'home.lab'" (
        builtins.replaceStrings [ "\n" "\\" ] [ " " " " ] c1svc.serviceConfig.ExecStartPre.text
      );
    "coordinator: serve" =
      c1svc.serviceConfig.ExecStart
      == "/nix/store/0000-lab-coordinator/bin/lab-coordinator serve --data-dir '/var/lib/lab-coordinator' ";
    "coordinator: system user" = c1.conf.users.users.lab-coordinator.isSystemUser;
    "coordinator: store cache below 8 MiB is refused" = !cBadCache.success;
  };
  failed = builtins.filter (name: !checks.${name}) (builtins.attrNames checks);
in
if failed == [ ] then
  "${toString (builtins.length (builtins.attrNames checks))} module checks passed"
else
  throw "NixOS module checks failed: ${builtins.concatStringsSep "; " failed}"
