//! Two small SVG charts, written by hand: lines on log-log axes, and grouped bars.

use std::fmt::Write;

/// Colours of the series, in order.
const COLOURS: &[&str] = &[
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        esc(title)
    );
}

fn legend(out: &mut String, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 10.0 + 20.0 * i as f64;
        let x = W - RIGHT + 15.0;
        let c = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="14" height="10" fill="{c}"/><text x="{}" y="{}">{}</text>"#,
            y - 9.0,
            x + 20.0,
            y,
            esc(name)
        );
    }
}

/// One line of a [`lines`] chart: its name and (x, y) points.
pub(crate) struct Series {
    /// The legend.
    pub(crate) name: String,
    /// The points.
    pub(crate) points: Vec<(f64, f64)>,
}

/// Lines on a linear x axis (with `x_ticks` labelled) and a logarithmic y axis, or a linear
/// one from 0 when `log_y` is false.
pub(crate) fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    x_ticks: &[(f64, String)],
    series: &[Series],
    log_y: bool,
) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| *y > 0.0);
    let (ymin, ymax) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    if x0 >= x1 || ymin > ymax {
        out.push_str("<text x=\"100\" y=\"100\">no data</text></svg>\n");
        return out;
    }
    let axis = YAxis::new(ymin, ymax, log_y);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| axis.y(y);
    axis.draw(&mut out);
    for (x, label) in x_ticks {
        let xx = px(*x);
        let _ = writeln!(
            out,
            r##"<line x1="{xx}" x2="{xx}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{xx}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            esc(label)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 15.0,
        esc(x_label)
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            if let Some((x, y)) = p.split_once(',') {
                let _ = writeln!(out, r#"<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>"#);
            }
        }
    }
    let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// Grouped bars: one group per label, one bar per series (values in `values[series][group]`,
/// `None` for a missing figure), on a linear or a logarithmic y axis.
pub(crate) fn bars(
    title: &str,
    y_label: &str,
    groups: &[String],
    names: &[String],
    values: &[Vec<Option<f64>>],
    log: bool,
) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let max = values
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b));
    let min = values
        .iter()
        .flatten()
        .flatten()
        .filter(|v| **v > 0.0)
        .fold(f64::MAX, |a, &b| a.min(b));
    let axis = YAxis::new(min, max, log);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let py = |v: f64| axis.y(v);
    axis.draw(&mut out);
    let gw = pw / groups.len().max(1) as f64;
    let bw = gw * 0.8 / names.len().max(1) as f64;
    for (g, label) in groups.iter().enumerate() {
        let gx = LEFT + gw * g as f64 + gw * 0.1;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + gw * (g as f64 + 0.5),
            TOP + ph + 18.0,
            esc(label)
        );
        for (s, series) in values.iter().enumerate() {
            let x = gx + bw * s as f64;
            let c = COLOURS[s % COLOURS.len()];
            match series.get(g).copied().flatten() {
                Some(v) => {
                    let _ = writeln!(
                        out,
                        r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{c}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                        py(v),
                        bw * 0.9,
                        (TOP + ph - py(v)).max(0.0),
                        x + bw * 0.45,
                        py(v) - 3.0,
                        trim(v)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">n/a</text>"#,
                        x + bw * 0.45,
                        TOP + ph - 3.0
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(y_label)
    );
    legend(&mut out, names);
    out.push_str("</svg>\n");
    out
}

/// A chart's y axis: linear from 0 to a round ceiling, or logarithmic over whole decades.
struct YAxis {
    log: bool,
    /// The linear axis's top.
    top: f64,
    /// The logarithmic axis's first and last decade (powers of ten).
    decades: (f64, f64),
}

impl YAxis {
    /// An axis for values up to `max`, the least positive one `min`.
    fn new(min: f64, max: f64, log: bool) -> YAxis {
        let top = if max > 0.0 { nice_ceiling(max) } else { 1.0 };
        let decades = if max > 0.0 && min <= max {
            let first = min.log10().floor();
            (first, max.log10().ceil().max(first + 1.0))
        } else {
            (0.0, 1.0)
        };
        YAxis { log, top, decades }
    }

    /// Where `v` stands on the drawing.
    fn y(&self, v: f64) -> f64 {
        let ph = H - TOP - BOTTOM;
        let (l0, l1) = self.decades;
        if self.log {
            TOP + ph - (v.max(10f64.powf(l0)).log10() - l0) / (l1 - l0) * ph
        } else {
            TOP + ph - v.max(0.0) / self.top * ph
        }
    }

    /// Draws the plot's frame, and the axis's grid lines with their labels.
    fn draw(&self, out: &mut String) {
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        );
        let ticks: Vec<f64> = if self.log {
            let (l0, l1) = self.decades;
            (l0 as i32..=l1 as i32).map(|d| 10f64.powi(d)).collect()
        } else {
            (0..=5).map(|k| self.top * k as f64 / 5.0).collect()
        };
        for v in ticks {
            let y = self.y(v);
            let label = if self.log { format!("{v}") } else { trim(v) };
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{label}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0
            );
        }
    }
}

fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn trim(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
