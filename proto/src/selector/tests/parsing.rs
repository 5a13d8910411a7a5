//! Parsing: errors with positions, and the canonical display.

use super::*;

// --- errors --------------------------------------------------------------------------

#[test]
fn error_double_comma() {
    assert_error("os=debian,,x", 10, "expected a requirement");
}

#[test]
fn error_display_shows_selector_position_and_snippet() {
    let err = "os=debian,,x".parse::<Selector>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "selector \"os=debian,,x\": expected a requirement (a key, '!key' or a fact path) at \
         position 10 (near \",x\")"
    );
    assert_eq!(err.position(), 10);
    let end = "a,".parse::<Selector>().unwrap_err();
    assert!(
        end.to_string()
            .ends_with("at position 2 (the end of the selector)"),
        "{end}"
    );
    let long = format!("a b{}", "c".repeat(40))
        .parse::<Selector>()
        .unwrap_err();
    assert!(
        long.to_string().ends_with("(near \"bccccccccccc\"…)"),
        "{long}"
    );
}

#[test]
fn error_caret_points_at_the_position() {
    let err = "os=debian,,x".parse::<Selector>().unwrap_err();
    assert_eq!(err.caret(), "os=debian,,x\n          ^");
    let err = "a=1,\t,x".parse::<Selector>().unwrap_err();
    assert_eq!(err.caret(), "a=1, ,x\n     ^");
}

#[test]
fn error_leading_and_trailing_commas() {
    assert_error(",", 0, "expected a requirement");
    assert_error(",a", 0, "expected a requirement");
    assert_error("a,", 2, "expected a requirement");
    assert_error("a, ", 3, "expected a requirement");
}

#[test]
fn error_missing_separator() {
    assert_error("a=b c", 4, "expected ',' or the end of the selector");
    assert_error("a b", 2, "expected an operator");
    assert_error("!a b", 3, "'!key' takes no operator");
    assert_error("a in (x) y", 9, "expected ','");
}

#[test]
fn error_bang() {
    assert_error("!", 1, "expected a key after '!'");
    assert_error("!,a", 1, "expected a key after '!'");
    assert_error("!a=b", 2, "'!key' takes no operator");
    assert_error("!a in (b)", 3, "'!key' takes no operator");
    assert_error("a!b", 1, "expected '!='");
    assert_error("a!", 1, "expected '!='");
    assert_error("!!a", 1, "expected a key");
}

#[test]
fn error_bad_operator() {
    assert_error("a (x)", 2, "expected 'in' or 'notin' before '('");
    assert_error("a:b", 1, "expected an operator");
    assert_error("a foo (x)", 2, "expected an operator");
    assert_error("a IN (x)", 2, "expected an operator");
    assert_error("a=>1", 2, "expected a value");
    assert_error("a===b", 3, "expected a value");
    assert_error("a=(b)", 2, "expected a value");
}

#[test]
fn error_lists() {
    assert_error("a in", 4, "expected '(' after 'in'");
    assert_error("a notin x", 8, "expected '(' after 'notin'");
    assert_error("a in (", 6, "expected a value");
    assert_error("a in ()", 6, "expected a value");
    assert_error("a in (x", 7, "to close the list");
    assert_error("a in (x,", 8, "expected a value");
    assert_error("a in (x,)", 8, "expected a value");
    assert_error("a in (x y)", 8, "expected ',' or ')'");
    assert_error("a in (x))", 8, "expected ','");
}

#[test]
fn error_comparison_on_label() {
    assert_error("cores<3", 5, "works only on fact paths");
    assert_error("cores>=3", 5, "label \"cores\" takes");
    assert_error("!cores<3", 6, "'!key' takes no operator");
}

#[test]
fn error_bad_numbers() {
    assert_error("facts.x>", 8, "expected a number");
    assert_error("facts.x> ,a", 9, "expected a number");
    assert_error("facts.x>abc", 8, "expected a number");
    assert_error("facts.x>=1.5.2", 9, "expected a number");
    assert_error("facts.x<.5", 8, "expected a number");
    assert_error("facts.x<+5", 8, "expected a number");
    assert_error("facts.x>1e999", 8, "out of range");
    assert_error("facts.x> = 5", 9, "expected a number");
    assert_error("facts.x<>5", 8, "expected a number");
    assert_error("facts.x>5(", 9, "expected ','");
}

#[test]
fn error_fact_paths() {
    assert_error("facts.", 6, "expected a fact path after 'facts.'");
    assert_error("facts.=x", 6, "expected a fact path");
    assert_error("facts..a", 6, "empty segment");
    assert_error("facts.a..b", 8, "empty segment");
    assert_error("facts.a.", 8, "empty segment");
    assert_error("x, !facts.a.", 12, "empty segment");
}

#[test]
fn error_non_ascii_and_control_characters() {
    assert_error("é=1", 0, "expected a requirement");
    assert_error("a=é", 2, "expected a value");
    assert_error("a=bé", 3, "expected ','");
    assert_error("a in (é)", 6, "expected a value");
    assert_error("a\0", 1, "expected an operator");
    assert_error("\u{a0}a", 0, "expected a requirement");
}

#[test]
fn error_too_long() {
    let at_limit = "a".repeat(MAX_SELECTOR_LEN);
    assert!(at_limit.parse::<Selector>().is_ok());
    let over = "a".repeat(MAX_SELECTOR_LEN + 1);
    let err = over.parse::<Selector>().unwrap_err();
    assert_eq!(
        err,
        SelectorError::TooLong {
            len: MAX_SELECTOR_LEN + 1
        }
    );
    assert_eq!(err.position(), MAX_SELECTOR_LEN);
    assert!(err.to_string().contains("the limit is 4096 bytes"), "{err}");
    assert!(err.to_string().len() < 200);
    assert_eq!(err.caret(), err.to_string());
}

// --- display -------------------------------------------------------------------------

#[test]
fn display_is_canonical() {
    let cases = [
        ("role==db", "role=db"),
        (" role = db ", "role=db"),
        ("a in ( y , x )", "a in (x,y)"),
        ("a notin(x)", "a notin (x)"),
        ("! a", "!a"),
        ("a , b", "a,b"),
        ("a!= ", "a!="),
        ("facts.a.b >= 16e9", "facts.a.b>=16e9"),
        ("facts.a<-1.5E+3", "facts.a<-1.5E+3"),
        ("!facts.x", "!facts.x"),
    ];
    for (input, canonical) in cases {
        assert_eq!(sel(input).to_string(), canonical, "{input}");
    }
}

#[test]
fn display_round_trips() {
    let selectors = [
        "",
        "role=db",
        "role==db",
        "role!=db",
        "role=",
        "role!=",
        "zone in (a,b,c)",
        "zone notin (a)",
        "gpu",
        "!gpu",
        "kubernetes.io/arch=amd64,os-version=12",
        "mac=52:54:00:12:34:56",
        "kernel=6.1.0-13+deb12",
        "facts.memory.total_bytes>=16e9",
        "facts.platform.os=debian",
        "facts.platform.cpus<4",
        "facts.platform.cpus<=4",
        "facts.platform.cpus>4",
        "facts.load>-1.5e-3",
        "facts.disks.0.model in (ssd1,hdd2)",
        "facts.disks.0.model notin (x)",
        "facts.a",
        "!facts.a.b.c",
        "in in (in)",
        "facts",
        " a = b , c in ( x , y ) , ! d ",
        "role=db,facts.platform.cpus>=4,!maintenance,zone in (a,b)",
    ];
    for s in selectors {
        let parsed = sel(s);
        let shown = parsed.to_string();
        assert_eq!(sel(&shown), parsed, "{s:?} displayed as {shown:?}");
        assert_eq!(
            sel(&shown).to_string(),
            shown,
            "display is a fixed point for {s:?}"
        );
    }
}

#[test]
fn nasty_inputs_never_panic() {
    // One input per line; the blank and space-only lines are inputs too.
    let printable = r#"
!
!!
= == != < >= , ,, ( ) () (((( ))))
a in ((
a in (()
a in (a,,b)
facts
facts.
facts..
facts.x>
facts.x>-
facts.x>1e
facts.x>1e+
facts.x>-.
- -- 1e5 --1
é
a=é
é=é
🦀
a=🦀
a in (🦀)
facts.🦀
a=b,
a=b,,
'a'="b"
a="b c"
a=b;c
a=b|c
a==b==c
a!==b
a=!b
a<=>b
facts.x>=1.5.5
facts.x=1e400
facts.x>1e308
facts.x>-1e308
facts.x<4.9e-324
facts.0.1.2>0
facts.x in ()
a notin
notin
in
in in
in in (
!in
! ! a
a ,
 , 
facts.a.b.c.d.e.f.g.h.i.j.k
"#;
    let escaped = [
        "\0",
        "\u{1}\u{7f}",
        "\u{feff}a=b",
        "a=b\u{feff}",
        "a\u{300}=b",
        "\u{202e}a=b",
        "a\r\n=b",
        "\t\t",
        "a=\u{a0}b",
        "\u{2028}",
    ];
    let mut inputs: Vec<String> = printable
        .lines()
        .chain(printable.split_whitespace())
        .chain(escaped)
        .map(str::to_owned)
        .collect();
    inputs.push("a".repeat(MAX_SELECTOR_LEN + 1));
    inputs.push("é".repeat(MAX_SELECTOR_LEN / 2));
    inputs.push("é".repeat(MAX_SELECTOR_LEN / 2 + 1));
    inputs.push("a=b,".repeat(MAX_SELECTOR_LEN / 4));
    inputs.push(format!("a in ({})", "x,".repeat(2000)));
    inputs.push(format!("facts.x>={}", "9".repeat(400)));
    inputs.push(format!("facts.x>={}", "9".repeat(40)));
    inputs.push(format!("facts.x={}", "9".repeat(40)));
    inputs.push(format!("facts.{}", "a.".repeat(2000)));
    inputs.push("(".repeat(MAX_SELECTOR_LEN));
    inputs.push("!".repeat(MAX_SELECTOR_LEN));
    inputs.push(format!("{}é", "a".repeat(MAX_SELECTOR_LEN - 2)));

    let f = facts();
    let node = labels(&[("a", "b"), ("in", "in")]);
    for input in &inputs {
        match input.parse::<Selector>() {
            Ok(selector) => {
                let shown = selector.to_string();
                assert_eq!(sel(&shown), selector, "{input:?}");
                let _ = selector.matches(&node, &f);
                let _ = selector.matches(&node, &Value::Null);
            }
            Err(err) => {
                let message = err.to_string();
                assert!(!message.is_empty());
                let _ = err.caret();
                assert!(err.position() <= input.len().max(MAX_SELECTOR_LEN));
            }
        }
    }
}

/// A cheap stand-in for the fuzz target: token soup from a fixed xorshift seed.
#[test]
fn generated_selectors_round_trip() {
    let tokens = [
        "a", "b", "facts.", "facts.x", ".", "=", "==", "!=", "!", "<", "<=", ">", ">=", " ", ",",
        "(", ")", " in ", " notin ", "in", "1", "-", "e", "+", "1.5", "16e9", "é", "\t", ":", "/",
        "_",
    ];
    let f = facts();
    let node = labels(&[("a", "b")]);
    let mut state: u64 = 0x1234_5678_9abc_def0;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 1024).unwrap_or(0)
    };
    let mut parsed = 0;
    for _ in 0..20_000 {
        let input: String = (0..next() % 12)
            .map(|_| tokens[next() % tokens.len()])
            .collect();
        match input.parse::<Selector>() {
            Ok(selector) => {
                parsed += 1;
                let shown = selector.to_string();
                assert_eq!(sel(&shown), selector, "{input:?} displayed as {shown:?}");
                let _ = selector.matches(&node, &f);
            }
            Err(err) => {
                let _ = err.caret();
            }
        }
    }
    assert!(parsed > 1000, "only {parsed} generated selectors parsed");
}

#[test]
fn numbers_compare_equal_only_by_literal() {
    // Selectors compare their text; 16e9 and 16000000000 select the same nodes but differ.
    assert_ne!(sel("facts.m>=16e9"), sel("facts.m>=16000000000"));
    let f = json!({"m": 16_000_000_000u64});
    assert!(on_facts("facts.m>=16e9", &f));
    assert!(on_facts("facts.m>=16000000000", &f));
}
