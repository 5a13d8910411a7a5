//! The topology as an SVG picture. Graphviz `dot -Tsvg` draws it when `dot` is installed (the
//! better layout); otherwise labctl lays it out itself: boxes in layers (a box sits one layer
//! below the lowest box pointing to it), left to right in the order the graph lists them, with
//! straight arrows. [`render`] says which one drew it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use lab_proto::topology::Topology;

use super::graph::{dot, Graph, Kind};

/// Who drew the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// Graphviz `dot -Tsvg`.
    Graphviz,
    /// labctl's own layered layout.
    Labctl,
}

impl std::fmt::Display for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Renderer::Graphviz => "Graphviz dot",
            Renderer::Labctl => "labctl's own layout (install Graphviz for a better one)",
        })
    }
}

/// The SVG of `t`, by Graphviz when `dot` runs, else by [`own`].
pub fn render(t: &Topology) -> (String, Renderer) {
    match graphviz(&dot(t)) {
        Some(svg) => (svg, Renderer::Graphviz),
        None => (own(t), Renderer::Labctl),
    }
}

/// `dot -Tsvg` on `text`; `None` when `dot` is missing or fails.
fn graphviz(text: &str) -> Option<String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = text.to_owned();
    // Write from another thread so a large graph cannot deadlock on full pipes.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    (out.status.success() && !out.stdout.is_empty())
        .then(|| String::from_utf8(out.stdout).ok())
        .flatten()
}

/// Text for inside an XML element or attribute (characters XML 1.0 forbids are dropped).
fn xml(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s
}

const CHAR_W: f64 = 7.0;
const LINE_H: f64 = 14.0;
const GAP_X: f64 = 24.0;
const GAP_Y: f64 = 56.0;
const MARGIN: f64 = 16.0;

/// labctl's own layered layout of `t`.
pub fn own(t: &Topology) -> String {
    let g = Graph::of(t);
    let n = g.vertices.len();
    let edges: Vec<(usize, usize, &str)> = g
        .edges
        .iter()
        .filter_map(|(a, b, l)| Some((g.position(a)?, g.position(b)?, l.as_str())))
        .collect();
    // Longest path from the roots, at most n rounds (a cycle cannot loop forever).
    let mut layer = vec![0usize; n];
    for _ in 0..n {
        let mut changed = false;
        for &(a, b, _) in &edges {
            if layer[b] < layer[a] + 1 && layer[a] < n {
                layer[b] = layer[a] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let size = |i: usize| {
        let v = &g.vertices[i];
        let chars = v.label.iter().map(|l| l.chars().count()).max().unwrap_or(1);
        (
            chars.max(4) as f64 * CHAR_W + 16.0,
            v.label.len() as f64 * LINE_H + 10.0,
        )
    };
    let layers = layer.iter().max().map_or(0, |m| m + 1);
    let row_h: Vec<f64> = (0..layers)
        .map(|l| {
            (0..n)
                .filter(|&i| layer[i] == l)
                .map(|i| size(i).1)
                .fold(0.0, f64::max)
        })
        .collect();
    let mut pos = vec![(0.0, 0.0, 0.0, 0.0); n];
    let mut width: f64 = 0.0;
    let mut y = MARGIN;
    for (l, h) in row_h.iter().enumerate() {
        // Each box goes under the middle of the boxes pointing to it, as far as room allows.
        let wanted = |i: usize| {
            let centres: Vec<f64> = edges
                .iter()
                .filter(|&&(a, b, _)| b == i && layer[a] < l)
                .map(|&(a, ..)| pos[a].0 + pos[a].2 / 2.0)
                .collect();
            (!centres.is_empty()).then(|| centres.iter().sum::<f64>() / centres.len() as f64)
        };
        let mut row: Vec<(usize, Option<f64>)> = (0..n)
            .filter(|&i| layer[i] == l)
            .map(|i| (i, wanted(i)))
            .collect();
        row.sort_by(|a, b| a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0)));
        let mut x = MARGIN;
        for (i, centre) in row {
            let (w, bh) = size(i);
            let left = centre.map_or(x, |c| (c - w / 2.0).max(x));
            pos[i] = (left, y, w, bh);
            x = left + w + GAP_X;
        }
        width = width.max(x - GAP_X + MARGIN);
        y += h + GAP_Y;
    }
    let height = y - GAP_Y + MARGIN;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="sans-serif" font-size="11">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>"##,
        w = width.max(2.0 * MARGIN),
        h = height.max(2.0 * MARGIN)
    );
    for &(a, b, label) in &edges {
        let (ax, ay, aw, ah) = pos[a];
        let (bx, by, bw, _) = pos[b];
        let (x1, y1, x2, y2) = (ax + aw / 2.0, ay + ah, bx + bw / 2.0, by);
        let _ = writeln!(
            s,
            r##"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="#555" marker-end="url(#arrow)"/>"##
        );
        if !label.is_empty() {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#555" font-size="9">{}</text>"##,
                (x1 + x2) / 2.0 + 3.0,
                (y1 + y2) / 2.0,
                xml(label)
            );
        }
    }
    for (i, v) in g.vertices.iter().enumerate() {
        let (x, y, w, h) = pos[i];
        let fill = match v.kind {
            Kind::Host => "#dbe8f7",
            Kind::Guest => "#f3f3f3",
            Kind::Node => "#e3f4e1",
            Kind::Cluster => "#fdf1d6",
            Kind::Service => "#ece3f7",
        };
        let stroke = if v.alert { "#c00" } else { "#333" };
        let dash = if v.faint {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let rx = if v.kind == Kind::Cluster { 14 } else { 5 };
        let _ = writeln!(
            s,
            r#"<g><title>{}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{rx}" fill="{fill}" stroke="{stroke}"{dash}/>"#,
            xml(&v.id)
        );
        for (k, line) in v.label.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{}">{}</text>"#,
                x + w / 2.0,
                y + 5.0 + LINE_H * (k as f64 + 0.8),
                if v.alert { "#c00" } else { "#111" },
                xml(line)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}
