//! The report's charts, drawn as inline SVG by hand: bars on a linear scale with a few grid
//! lines, a `<title>` (tooltip) on every bar. Text from the trail (actor names) is escaped like
//! everywhere else in the page.

// Counts become pixel positions: f64 holds every count a report can have exactly enough.
#![allow(clippy::cast_precision_loss)]

use std::fmt::Write as _;

use super::{esc, truncate};

/// A colour per category, in the order of `Category::ALL` (Tableau 10, readable in print).
pub(super) const CATEGORY_COLORS: [&str; 9] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f",
];

/// The colour of failed attempts.
pub(super) const FAILED_COLOR: &str = "#b42318";

/// One bar of a time chart: a day, or several days when the window is long.
pub(super) struct Bucket {
    /// The axis label, `MM-DD` of the first day.
    pub label: String,
    /// The days it covers, for tooltips: `2024-05-02` or `2024-05-01 – 2024-05-07`.
    pub days: String,
    /// A count per series (per category, or one series).
    pub counts: Vec<u64>,
}

/// The top of the value axis and its tick step: a step of 1, 2 or 5 × 10ⁿ giving at most five
/// ticks above zero.
fn scale(max: u64) -> (u64, u64) {
    let mut step = 1;
    'search: for magnitude in 0..19 {
        for factor in [1, 2, 5] {
            step = factor * 10u64.pow(magnitude);
            if max.div_ceil(step) <= 5 {
                break 'search;
            }
        }
    }
    (step * max.div_ceil(step).max(1), step)
}

/// The opening tag of a chart: drawn at its natural size (text at its CSS size), shrunk to
/// fit a narrower page.
fn open(width: f64, height: f64, aria: &str) -> String {
    format!(
        r#"<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        esc(aria)
    )
}

/// Vertical bars over time, stacked by series; `names` and `colors` are per series.
pub(super) fn columns(
    buckets: &[Bucket],
    names: &[&str],
    colors: &[&str],
    (unit, aria): (&str, &str),
    width: f64,
) -> String {
    const HEIGHT: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 8.0;
    const BOTTOM: f64 = 24.0;
    let plot_w = width - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max = buckets
        .iter()
        .map(|b| b.counts.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let (top, step) = scale(max);
    let y = |value: u64| TOP + plot_h - value as f64 / top as f64 * plot_h;
    let mut svg = open(width, HEIGHT, aria);
    let mut tick = 0;
    while tick <= top {
        let at = y(tick);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{at:.1}" y2="{at:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{tick}</text>"#,
            width - RIGHT,
            LEFT - 6.0,
            at + 4.0
        );
        tick += step;
    }
    let band = plot_w / buckets.len().max(1) as f64;
    let bar = (band * 0.8).max(1.0);
    let label_every = buckets.len().div_ceil(12).max(1);
    for (i, bucket) in buckets.iter().enumerate() {
        let x = LEFT + i as f64 * band + (band - bar) / 2.0;
        let mut base = 0;
        for (series, &count) in bucket.counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let (y0, y1) = (y(base), y(base + count));
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y1:.1}" width="{bar:.1}" height="{:.1}" fill="{}"><title>{}: {} {count} {unit}</title></rect>"#,
                y0 - y1,
                colors[series % colors.len()],
                esc(&bucket.days),
                esc(names[series % names.len()]),
            );
            base += count;
        }
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                HEIGHT - 8.0,
                esc(&bucket.label)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/></svg>"#,
        width - RIGHT,
        y(0),
        y(0)
    );
    svg
}

/// Horizontal bars, one per labelled count, largest first as given.
pub(super) fn bars(
    items: &[(String, u64)],
    color: &str,
    (unit, aria): (&str, &str),
    width: f64,
) -> String {
    const ROW: f64 = 22.0;
    const LABEL: f64 = 230.0;
    const RIGHT: f64 = 56.0;
    let height = ROW * items.len().max(1) as f64 + 6.0;
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let (top, _) = scale(max);
    let plot_w = width - LABEL - RIGHT;
    let mut svg = open(width, height, aria);
    for (i, (label, count)) in items.iter().enumerate() {
        let y = 3.0 + i as f64 * ROW;
        let w = (*count as f64 / top as f64 * plot_w).max(1.0);
        let _ = write!(
            svg,
            r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{LABEL}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{color}"><title>{}: {count} {unit}</title></rect><text x="{:.1}" y="{:.1}">{count}</text>"#,
            LABEL - 8.0,
            y + 14.0,
            esc(&truncate(label, 34)),
            y + 2.0,
            ROW - 6.0,
            esc(label),
            LABEL + w + 6.0,
            y + 14.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A legend of coloured squares, as HTML.
pub(super) fn legend(names: &[&str], colors: &[&str]) -> String {
    let mut html = String::from(r#"<div class="legend">"#);
    for (name, color) in names.iter().zip(colors) {
        let _ = write!(
            html,
            r#"<span><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" fill="{color}"/></svg>{}</span>"#,
            esc(name)
        );
    }
    html.push_str("</div>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_a_round_number_with_few_ticks() {
        assert_eq!(scale(0), (1, 1));
        assert_eq!(scale(1), (1, 1));
        assert_eq!(scale(4), (4, 1));
        assert_eq!(scale(7), (8, 2));
        assert_eq!(scale(23), (25, 5));
        assert_eq!(scale(101), (150, 50));
        assert_eq!(scale(50_000), (50_000, 10_000));
    }

    #[test]
    fn stacked_bars_are_as_tall_as_their_total() {
        let buckets = [
            Bucket {
                label: "05-01".into(),
                days: "2024-05-01".into(),
                counts: vec![2, 0, 2],
            },
            Bucket {
                label: "05-02".into(),
                days: "2024-05-02".into(),
                counts: vec![0, 0, 0],
            },
        ];
        let svg = columns(
            &buckets,
            &["a", "b", "c"],
            &CATEGORY_COLORS,
            ("changes", "x"),
            720.0,
        );
        assert_eq!(svg.matches("<rect").count(), 2, "zero counts draw nothing");
        // Total 4 on a scale of 4: the two halves fill the plot (188 px high).
        assert!(svg.contains(r#"height="94.0""#), "{svg}");
        assert!(
            svg.contains("<title>2024-05-01: c 2 changes</title>"),
            "{svg}"
        );
        assert!(svg.contains(">05-01</text>") && svg.contains(">05-02</text>"));
    }
}
