# A small stand-in for the parts of nixpkgs' lib that deploy/nixos/*.nix use, so that CI (which
# has no nixpkgs offline) can evaluate the modules' logic: options with their types and defaults,
# mkIf, and the string helpers. It follows nixpkgs' semantics for what the modules rely on (for
# example types.str refuses a path literal), not nixpkgs' implementation.
let
  inherit (builtins)
    isString
    isBool
    isInt
    isAttrs
    isList
    all
    attrValues
    replaceStrings
    stringLength
    substring
    filter
    ;
  mkType = name: check: { inherit name check; };
in
rec {
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = what: mkOption {
    type = types.bool;
    default = false;
    description = "Whether to enable ${what}.";
  };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkDefault = v: v;
  literalExpression = text: { _type = "literalExpression"; inherit text; };

  types = rec {
    str = mkType "str" isString;
    bool = mkType "bool" isBool;
    int = mkType "int" isInt;
    package = mkType "package" (v: isAttrs v && v ? outPath);
    path = mkType "path" (v: builtins.isPath v || isString v);
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v);
    either = a: b: mkType "${a.name} or ${b.name}" (v: a.check v || b.check v);
    listOf = t: mkType "list of ${t.name}" (v: isList v && all t.check v);
    attrsOf = t: mkType "attrs of ${t.name}" (v: isAttrs v && all t.check (attrValues v));
    ints.between = lo: hi: mkType "int between ${toString lo} and ${toString hi}" (
      v: isInt v && v >= lo && v <= hi
    );
  };

  hasPrefix = pre: s: substring 0 (stringLength pre) s == pre;
  removePrefix = pre: s:
    if hasPrefix pre s then substring (stringLength pre) (stringLength s) s else s;
  optional = c: v: if c then [ v ] else [ ];
  optionals = c: v: if c then v else [ ];
  optionalString = c: s: if c then s else "";
  optionalAttrs = c: a: if c then a else { };
  escapeShellArg = a: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString a)}'";
  escapeShellArgs = l: builtins.concatStringsSep " " (map escapeShellArg l);
  getExe = p: "${p.outPath}/bin/${p.meta.mainProgram}";
  splitString = sep: s: filter isString (builtins.split (replaceStrings [ "." "[" "]" ] [ "\\." "\\[" "\\]" ] sep) s);
  last = l: builtins.elemAt l (builtins.length l - 1);
  toInt = s: builtins.fromJSON s;
  elem = builtins.elem;
  inherit filter;
  listToAttrs = builtins.listToAttrs;
  nameValuePair = name: value: { inherit name value; };
  toList = v: if isList v then v else [ v ];
  concatStringsSep = builtins.concatStringsSep;
}
