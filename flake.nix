# labfleet as a Nix flake: the three binaries and NixOS modules for the agent and the
# coordinator. The modules also live under deploy/nixos/ for configurations without flakes.
#
#   nix build .#lab-agent            # or .#lab-coordinator, .#labctl
#   inputs.labfleet.url = "git+https://example.invalid/labfleet";
#   modules = [ labfleet.nixosModules.agent { services.lab-agent = { enable = true; ... }; } ];
{
  description = "labfleet: fleet manager for homelabs (agent, coordinator, labctl)";

  # One NixOS release branch; flake.lock pins its exact commit (created by the first
  # 'nix flake lock' or 'nix build'; this repository's CI has no network to make it).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      crates = [
        "lab-agent"
        "lab-coordinator"
        "labctl"
      ];
      # A module with its package defaulting to this flake's build for the host's system.
      withPackage =
        module: crate:
        { pkgs, lib, ... }:
        {
          imports = [ module ];
          config.services.${crate}.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.${crate};
        };
    in
    {
      packages = forAllSystems (
        pkgs:
        nixpkgs.lib.genAttrs crates (crate: pkgs.callPackage ./deploy/nixos/package.nix { inherit crate; })
        // {
          default = self.packages.${pkgs.stdenv.hostPlatform.system}.labctl;
        }
      );

      nixosModules = {
        agent = withPackage ./deploy/nixos/agent.nix "lab-agent";
        coordinator = withPackage ./deploy/nixos/coordinator.nix "lab-coordinator";
      };
    };
}
