# NixOS module for the labfleet agent (services.lab-agent). Import it directly
# (imports = [ /path/to/labfleet/deploy/nixos/agent.nix ];) or through the flake
# (labfleet.nixosModules.agent).
#
# Enrollment: when tokenFile is set and the node has no identity yet (no DATADIR/node.pem),
# lab-agent-enroll.service runs 'lab-agent enroll' once before the agent starts. The token is
# handed over with systemd's LoadCredential, read from tokenFile at start: tokenFile is a string,
# never a Nix path, so the secret is not copied into the world-readable Nix store. A wrong or
# used token fails lab-agent-enroll.service (the enroll error is in its journal) and
# lab-agent.service with it, without a restart loop. Once enrolled, the token file may be
# deleted.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.lab-agent;
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    escapeShellArg
    escapeShellArgs
    ;
  identity = "${cfg.dataDir}/node.pem";
  # One address or a list: passed on as A:7443,B:7443 (null: not set).
  coordinators =
    if cfg.coordinator == null then null else lib.concatStringsSep "," (lib.toList cfg.coordinator);
  configFile = (pkgs.formats.toml { }).generate "lab-agent.toml" { inherit (cfg) labels; };
  # StateDirectory= only names directories under /var/lib; elsewhere tmpfiles makes it.
  stateDirectory = lib.removePrefix "/var/lib/" cfg.dataDir;
  underVarLib = lib.hasPrefix "/var/lib/" cfg.dataDir && stateDirectory != "";
  enroll = pkgs.writeShellScript "lab-agent-enroll" ''
    set -eu
    token_file="$CREDENTIALS_DIRECTORY/token"
    # In the environment, not on the command line: /proc/PID/environ is readable by root only.
    LAB_TOKEN=$(cat "$token_file")
    export LAB_TOKEN
    exec ${lib.getExe cfg.package} enroll \
      --coordinator ${escapeShellArg coordinators} \
      --data-dir ${escapeShellArg cfg.dataDir} \
      ${lib.optionalString (cfg.nodeName != null) "--name ${escapeShellArg cfg.nodeName}"}
  '';
  # The sandbox of deploy/systemd/lab-agent.service, shared by both units. The agent manages
  # the machine (packages, services, nixos-rebuild, backups, containers), so it stays root in the
  # host's mount namespace and loses only what that work never needs (INSTALL.md says why).
  hardening = {
    # Not ProtectClock: it also limits device access (DeviceAllow=char-rtc), which tasks such
    # as smartctl or mount need; the capability bound and the filter take the clock away.
    CapabilityBoundingSet = "~CAP_SYS_TIME CAP_WAKE_ALARM";
    SystemCallFilter = [ "~@clock @cpu-emulation @obsolete" ];
    SystemCallErrorNumber = "EPERM";
    RestrictRealtime = true;
    LockPersonality = true;
    SystemCallArchitectures = "native";
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
      "AF_NETLINK"
    ];
  };
in
{
  options.services.lab-agent = {
    enable = mkEnableOption "the labfleet agent (lab-agent)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { crate = "lab-agent"; };
      defaultText = lib.literalExpression ''pkgs.callPackage ./package.nix { crate = "lab-agent"; }'';
      description = "The lab-agent package.";
    };

    coordinator = mkOption {
      type = types.nullOr (types.either types.str (types.listOf types.str));
      default = null;
      example = [
        "10.0.0.5:7443"
        "10.0.0.6:7443"
      ];
      description = ''
        Coordinator address, HOST:PORT, or a list of them when several coordinators share one
        etcd store (the agent uses whichever is the leader, a standby points it there).
        Enrollment records it in DATADIR/agent.toml; when set, it also replaces that record on
        every start of the agent (LAB_COORDINATOR), so a coordinator added later only needs
        this option changed, no new enrollment.
      '';
    };

    tokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/lab-agent-token";
      description = ''
        Path of a file (outside the Nix store, e.g. from agenix or sops-nix) holding a one-time
        enrollment token from 'labctl token create'. Read only when the node has no identity
        yet. A string on purpose: a Nix path literal would copy the secret into the store.
      '';
    };

    nodeName = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        Node name to enroll as; by default the name the token is bound to, else the hostname.
      '';
    };

    labels = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        role = "storage";
        zone = "rack1";
      };
      description = ''
        Labels this machine reports (written to /etc/lab/agent.toml). Reserved keys that the
        coordinator derives (node, hostname, os, os-version, arch, virt) are ignored by it.
      '';
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/lab-agent";
      description = "The agent's state: its certificate and key (node.pem), the pinned CA, agent.toml.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--max-tasks"
        "4"
      ];
      description = "Extra arguments for 'lab-agent run' (see lab-agent run --help).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.tokenFile == null || !(lib.hasPrefix builtins.storeDir cfg.tokenFile);
        message = "services.lab-agent.tokenFile points into the Nix store, where every user can read the token; keep it elsewhere (e.g. /run/secrets)";
      }
      {
        assertion = cfg.tokenFile == null || (coordinators != null && coordinators != "");
        message = "services.lab-agent.tokenFile needs services.lab-agent.coordinator (HOST:PORT, or a list) to enroll";
      }
      {
        assertion = lib.hasPrefix "/" cfg.dataDir;
        message = "services.lab-agent.dataDir must be an absolute path";
      }
    ];

    environment.systemPackages = [ cfg.package ];
    environment.etc."lab/agent.toml".source = configFile;

    systemd.tmpfiles.rules = lib.optional (!underVarLib) "d ${cfg.dataDir} 0700 root root - -";

    systemd.services.lab-agent-enroll = mkIf (cfg.tokenFile != null) {
      description = "labfleet agent enrollment (first start only)";
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      unitConfig.ConditionPathExists = "!${identity}";
      serviceConfig = hardening // {
        Type = "oneshot";
        ExecStart = enroll;
        LoadCredential = "token:${cfg.tokenFile}";
        UMask = "0077";
      } // lib.optionalAttrs underVarLib {
        StateDirectory = stateDirectory;
        StateDirectoryMode = "0700";
      };
    };

    systemd.services.lab-agent = {
      description = "labfleet agent";
      documentation = [ "man:lab-agent(8)" ];
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ] ++ lib.optional (cfg.tokenFile != null) "lab-agent-enroll.service";
      wants = [ "network-online.target" ];
      requires = lib.optional (cfg.tokenFile != null) "lab-agent-enroll.service";
      # Not enrolled and nothing to enroll with: the unit stays inactive, its status says why.
      unitConfig.ConditionPathExists = identity;
      restartTriggers = [ configFile ];
      environment = lib.optionalAttrs (coordinators != null) { LAB_COORDINATOR = coordinators; };
      # Tasks run the machine's own tools: nixos-rebuild, systemctl, restic, docker, ...
      path = [
        "/run/wrappers"
        "/run/current-system/sw"
      ];
      serviceConfig = hardening // {
        Type = "simple";
        ExecStart = "${lib.getExe cfg.package} run --data-dir ${escapeShellArg cfg.dataDir} ${escapeShellArgs cfg.extraArgs}";
        Restart = "always";
        RestartSec = "2s";
        # Exit code 4: the coordinator refuses this node's certificate (revoked or removed);
        # restarting cannot help, enroll the machine again instead.
        RestartPreventExitStatus = 4;
        KillMode = "process";
      } // lib.optionalAttrs underVarLib {
        StateDirectory = stateDirectory;
        StateDirectoryMode = "0700";
      };
    };
  };
}
