//! SVG charts for `docs/bench/` (plotters, SVG backend only; text is laid out by plotters'
//! built-in estimate, so no font files are needed).

use crate::harness::{Sample, Scenario};
use crate::summary::{self, stat, Metric};
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::RangedCoordusize;
use plotters::prelude::*;
use std::path::Path;

const PALETTE: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
];

/// An x axis of `n` categories. plotters' integer ranges are closed, so `0..n-1` makes
/// exactly `n` segments.
fn categories(n: usize) -> SegmentedCoord<RangedCoordusize> {
    (0..n.max(1) - 1).into_segmented()
}

fn label(names: &[String], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// The middle of category `i`, and its left and right bar edges.
fn at(i: usize) -> SegmentValue<usize> {
    SegmentValue::CenterOf(i)
}

/// Bars of `metric`'s median per contender in `scenario`, with the min–max range as a
/// whisker and every round as a dot. Contenders without a clean run are left out.
pub fn bars(
    path: &Path,
    caption: &str,
    y_desc: &str,
    samples: &[Sample],
    scenario: Scenario,
    contenders: &[String],
    metric: Metric,
) -> anyhow::Result<bool> {
    let data: Vec<(String, summary::Stat, Vec<f64>)> = contenders
        .iter()
        .filter_map(|c| {
            let st = stat(samples, scenario, c, metric)?;
            let rounds = samples
                .iter()
                .filter(|s| s.scenario == scenario && &s.contender == c && s.counts())
                .filter_map(|s| s.report.as_ref().and_then(metric))
                .collect();
            Some((c.clone(), st, rounds))
        })
        .collect();
    if data.is_empty() {
        return Ok(false);
    }
    let ymax = data.iter().map(|d| d.1.max).fold(0.0, f64::max) * 1.15;
    let n = data.len();
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(90)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..ymax.max(1.0))?;
    let names: Vec<String> = data.iter().map(|d| d.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        // ask for half-steps so the integers (the bars) are among the label points
        .x_labels(2 * n + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .y_label_formatter(&|v| summary::fmt_num(*v))
        .draw()?;
    for (i, (_, st, rounds)) in data.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let x = i as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.3, 0.0), (x + 0.3, st.median)],
            color.mix(0.75).filled(),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, st.min), (x, st.max)],
            BLACK.stroke_width(2),
        )))?;
        chart.draw_series(
            rounds
                .iter()
                .map(|v| Circle::new((x, *v), 3, BLACK.filled())),
        )?;
    }
    root.present()?;
    Ok(true)
}

/// Latency percentiles (median over rounds) as one line per contender.
pub fn percentiles(
    path: &Path,
    caption: &str,
    samples: &[Sample],
    scenario: Scenario,
    contenders: &[String],
) -> anyhow::Result<bool> {
    let points: [(&str, Metric); 4] = [
        ("p50", summary::p50),
        ("p90", summary::p90),
        ("p99", summary::p99),
        ("p99.9", summary::p999),
    ];
    let lines: Vec<(String, Vec<f64>)> = contenders
        .iter()
        .filter_map(|c| {
            let v: Option<Vec<f64>> = points
                .iter()
                .map(|(_, m)| stat(samples, scenario, c, *m).map(|s| s.median))
                .collect();
            Some((c.clone(), v?))
        })
        .collect();
    if lines.is_empty() {
        return Ok(false);
    }
    let ymax = lines
        .iter()
        .flat_map(|l| l.1.iter().copied())
        .fold(0.0, f64::max)
        * 1.15;
    let point_names: Vec<String> = points.iter().map(|p| p.0.to_string()).collect();
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(categories(points.len()), 0.0..ymax.max(1.0))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(points.len())
        .x_label_formatter(&|v| label(&point_names, v))
        .y_desc("µs")
        .y_label_formatter(&|v| summary::fmt_num(*v))
        .draw()?;
    for (i, (name, ys)) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(SegmentValue<usize>, f64)> =
            ys.iter().enumerate().map(|(x, y)| (at(x), *y)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(true)
}

/// One line per series over the categories `x_names` (each series one value per category;
/// NaN leaves a point out): the floors' percentiles and the growth sweeps.
pub fn lines(
    path: &Path,
    caption: &str,
    y_desc: &str,
    x_names: &[String],
    lines: &[(String, Vec<f64>)],
) -> anyhow::Result<bool> {
    let finite = |v: &f64| v.is_finite();
    if x_names.is_empty() || !lines.iter().any(|l| l.1.iter().any(finite)) {
        return Ok(false);
    }
    let ymax = lines
        .iter()
        .flat_map(|l| l.1.iter().copied().filter(finite))
        .fold(0.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(categories(x_names.len()), 0.0..ymax.max(1e-3))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(x_names.len())
        .x_label_formatter(&|v| label(x_names, v))
        .y_desc(y_desc)
        .y_label_formatter(&|v| summary::fmt_num(*v))
        .draw()?;
    for (i, (name, ys)) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(SegmentValue<usize>, f64)> = ys
            .iter()
            .enumerate()
            .filter(|(_, y)| y.is_finite())
            .map(|(x, y)| (at(x), *y))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(true)
}
