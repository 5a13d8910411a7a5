# NixOS module for the labfleet coordinator (services.lab-coordinator). Import it directly
# (imports = [ /path/to/labfleet/deploy/nixos/coordinator.nix ];) or through the flake
# (labfleet.nixosModules.coordinator).
#
# On first start, when dataDir holds no CA yet, the unit runs 'lab-coordinator init' with
# advertise and trustDomain: CA, server certificate, admin operator and the first admin config,
# DATADIR/labctl.toml (readable by root and lab-coordinator only). Later starts keep the CA;
# changing advertise afterwards needs 'lab-coordinator cert --advertise' (see INSTALL.md).
#
# With store = "etcd://…" the state lives in etcd instead of dataDir/state, and several
# coordinators on the same etcd cluster and prefix elect one leader; the others wait as
# standbys. The first of them runs init; the others set joinKeyFile (a copy of the first's
# DATADIR/join.key) and run 'lab-coordinator join' on their first start instead. etcd's client certificate and key are handed over with LoadCredential, so they may
# stay readable by root only.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.lab-coordinator;
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    escapeShellArg
    escapeShellArgs
    ;
  exe = lib.getExe cfg.package;
  stateDirectory = lib.removePrefix "/var/lib/" cfg.dataDir;
  underVarLib = lib.hasPrefix "/var/lib/" cfg.dataDir && stateDirectory != "";
  # The port of HOST:PORT or [V6]:PORT.
  listenPort = lib.toInt (lib.last (lib.splitString ":" cfg.listen));
  usesEtcd = lib.hasPrefix "etcd://" cfg.store;
  # etcd's TLS files, each (credential name, path) when set.
  etcdCredentials = lib.filter (c: c.path != null) [
    {
      name = "etcd-ca";
      env = "LAB_ETCD_CA";
      path = cfg.etcdCaFile;
    }
    {
      name = "etcd-cert";
      env = "LAB_ETCD_CERT";
      path = cfg.etcdCertFile;
    }
    {
      name = "etcd-key";
      env = "LAB_ETCD_KEY";
      path = cfg.etcdKeyFile;
    }
  ];
  # First start: init (the fleet's first coordinator) or, with joinKeyFile, join (the next ones).
  initOnce = pkgs.writeShellScript "lab-coordinator-init" (
    ''
      set -eu
      if [ -e ${escapeShellArg cfg.dataDir}/ca.key ]; then exit 0; fi
    ''
    + (
      if cfg.joinKeyFile != null then
        ''
          exec ${exe} join --data-dir ${escapeShellArg cfg.dataDir} \
            --advertise ${escapeShellArg cfg.advertise} \
            --join-key "$CREDENTIALS_DIRECTORY/join-key"
        ''
      else
        ''
          exec ${exe} init --data-dir ${escapeShellArg cfg.dataDir} \
            --advertise ${escapeShellArg cfg.advertise} \
            --trust-domain ${escapeShellArg cfg.trustDomain}
        ''
    )
  );
in
{
  options.services.lab-coordinator = {
    enable = mkEnableOption "the labfleet coordinator (lab-coordinator)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { crate = "lab-coordinator"; };
      defaultText = lib.literalExpression ''pkgs.callPackage ./package.nix { crate = "lab-coordinator"; }'';
      description = "The lab-coordinator package.";
    };

    listen = mkOption {
      type = types.str;
      default = "0.0.0.0:7443";
      example = "[::]:7443";
      description = "gRPC (mTLS) listen address, ADDR:PORT (LAB_LISTEN).";
    };

    advertise = mkOption {
      type = types.str;
      example = "10.0.0.5:7443";
      description = ''
        Address agents and operators dial, HOST:PORT; its host goes into the server certificate.
        Used by the first start's 'lab-coordinator init' only.
      '';
    };

    trustDomain = mkOption {
      type = types.str;
      default = "lab.local";
      example = "home.lab";
      description = "Trust domain of the CA (identities are spiffe://DOMAIN/...); fixed at init.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the listen port in the firewall (TCP).";
    };

    storeCacheMiB = mkOption {
      type = types.ints.between 8 65536;
      default = 128;
      description = "Cache size of the embedded store in MiB (LAB_STORE_CACHE_MIB).";
    };

    store = mkOption {
      type = types.str;
      default = "sled";
      example = "etcd://10.0.0.11:2379,10.0.0.12:2379,10.0.0.13:2379";
      description = ''
        Where the coordinator keeps its state (LAB_STORE): "sled", embedded in dataDir, or
        etcd://HOST:PORT[,HOST:PORT…]. With etcd, several coordinators sharing the cluster and
        etcdPrefix elect one leader; the others wait as standbys and take over when it stops.
      '';
    };

    etcdPrefix = mkOption {
      type = types.str;
      default = "/labfleet/";
      description = "Key prefix of this fleet in etcd (LAB_ETCD_PREFIX); fleets sharing an etcd use different ones.";
    };

    etcdCaFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/etc/etcd/pki/ca.crt";
      description = "CA certificate (PEM) of etcd's members; turns on TLS to etcd. Read at start through LoadCredential.";
    };

    etcdCertFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Client certificate (PEM) for etcd's mutual TLS, read through LoadCredential.";
    };

    etcdKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/lab-coordinator-etcd.key";
      description = "Key of etcdCertFile, read through LoadCredential (it may stay readable by root only).";
    };

    joinKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/lab-coordinator-join.key";
      description = ''
        etcd store: a copy of DATADIR/join.key of a coordinator of the fleet. When set, the first
        start runs 'lab-coordinator join' (this machine becomes another coordinator of that
        fleet, with its own server certificate from the fleet's CA) instead of 'init'. Read
        through LoadCredential; a string so that the key is never copied into the Nix store.
      '';
    };

    leaderTtl = mkOption {
      type = types.str;
      default = "5s";
      description = "etcd store: lease TTL of the leader (LAB_LEADER_TTL); a standby takes over this long after the leader stopped.";
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/lab-coordinator";
      description = "CA, server certificate, settings, the store (state/) and the admin labctl.toml.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--metrics-listen"
        "0.0.0.0:7444"
      ];
      description = "Extra arguments for 'lab-coordinator serve' (see lab-coordinator serve --help).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/" cfg.dataDir;
        message = "services.lab-coordinator.dataDir must be an absolute path";
      }
      {
        assertion = cfg.store == "sled" || usesEtcd;
        message = "services.lab-coordinator.store must be \"sled\" or etcd://HOST:PORT[,HOST:PORT…]";
      }
      {
        assertion = cfg.joinKeyFile == null || usesEtcd;
        message = "services.lab-coordinator.joinKeyFile needs an etcd store (store = \"etcd://…\")";
      }
      {
        assertion = cfg.joinKeyFile == null || !(lib.hasPrefix builtins.storeDir cfg.joinKeyFile);
        message = "services.lab-coordinator.joinKeyFile points into the Nix store, where every user can read it";
      }
      {
        assertion = (cfg.etcdCertFile == null) == (cfg.etcdKeyFile == null);
        message = "services.lab-coordinator.etcdCertFile and etcdKeyFile go together";
      }
    ];

    environment.systemPackages = [ cfg.package ];

    users.users.lab-coordinator = {
      isSystemUser = true;
      group = "lab-coordinator";
      home = cfg.dataDir;
      description = "labfleet coordinator";
    };
    users.groups.lab-coordinator = { };

    systemd.tmpfiles.rules = lib.optional (
      !underVarLib
    ) "d ${cfg.dataDir} 0700 lab-coordinator lab-coordinator - -";

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall listenPort;

    systemd.services.lab-coordinator = {
      description = "labfleet coordinator";
      documentation = [ "man:lab-coordinator(8)" ];
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      environment = {
        LAB_DATA_DIR = cfg.dataDir;
        LAB_LISTEN = cfg.listen;
        LAB_STORE_CACHE_MIB = toString cfg.storeCacheMiB;
      }
      // lib.optionalAttrs usesEtcd (
        {
          LAB_STORE = cfg.store;
          LAB_ETCD_PREFIX = cfg.etcdPrefix;
          LAB_LEADER_TTL = cfg.leaderTtl;
        }
        // lib.listToAttrs (map (c: lib.nameValuePair c.env "%d/${c.name}") etcdCredentials)
      );
      serviceConfig = {
        # READY=1 once the store is open and the listener bound.
        Type = "notify";
        User = "lab-coordinator";
        Group = "lab-coordinator";
        ExecStartPre = initOnce;
        ExecStart = "${exe} serve --data-dir ${escapeShellArg cfg.dataDir} ${escapeShellArgs cfg.extraArgs}";
        Restart = "on-failure";
        RestartSec = "2s";
        # With an etcd store a standby is not ready until it becomes the leader.
        TimeoutStartSec = "infinity";
        UMask = "0077";
        LimitNOFILE = 65536;
        ReadWritePaths = [ cfg.dataDir ];
        LoadCredential =
          map (c: "${c.name}:${c.path}") etcdCredentials
          ++ lib.optional (cfg.joinKeyFile != null) "join-key:${cfg.joinKeyFile}";

        # The sandbox of deploy/systemd/lab-coordinator.service: only its state directory, TCP
        # and its own processes.
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = true;
        PrivateIPC = true;
        PrivateMounts = true;
        KeyringMode = "private";
        ProtectClock = true;
        ProtectHostname = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        SystemCallErrorNumber = "EPERM";
        DevicePolicy = "closed";
      } // lib.optionalAttrs underVarLib {
        StateDirectory = stateDirectory;
        StateDirectoryMode = "0700";
      };
    };
  };
}
