//! The `--plot` figure: prefill time against N, log-log, per implementation.
//!
//! Why a plot: the claim of the sparse kernel is a slope (`N log N` against
//! the dense `N²`) as much as a constant factor; on log-log axes the slopes
//! read directly, and the gap between our sparse line and ruvllm's is the
//! speedup at every N. Drawn with plotters' SVG backend (no fonts or native
//! libraries needed).

use std::path::Path;

use plotters::prelude::*;

use crate::prefill::{Impl, Results};

/// Line colour of each implementation.
const fn colour(imp: Impl) -> RGBColor {
    match imp {
        Impl::Sparse => RGBColor(0x1f, 0x77, 0xb4),
        Impl::Dense => RGBColor(0x2c, 0xa0, 0x2c),
        Impl::Ruvllm => RGBColor(0xd6, 0x27, 0x28),
        Impl::RuvllmDense => RGBColor(0x94, 0x67, 0xbd),
    }
}

/// Writes an SVG with one panel per shape in `shapes`: median prefill ms
/// against N for every implementation measured there.
///
/// # Errors
/// The drawing backend's error, as text.
pub(crate) fn write(results: &Results, shapes: &[&str], path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (640 * shapes.len() as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, shapes.len()));
    for (panel, &shape) in panels.iter().zip(shapes) {
        draw_panel(results, shape, panel)?;
    }
    root.present().map_err(|e| e.to_string())
}

fn draw_panel(
    results: &Results,
    shape: &str,
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
) -> Result<(), String> {
    let points: Vec<_> = results
        .measurements
        .iter()
        .filter(|m| m.shape == shape)
        .collect();
    if points.is_empty() {
        return Ok(());
    }
    let n_min = points.iter().map(|m| m.n).min().unwrap_or(1) as f64;
    let n_max = points.iter().map(|m| m.n).max().unwrap_or(2) as f64;
    let t_min = points
        .iter()
        .map(|m| m.median_ms)
        .fold(f64::INFINITY, f64::min);
    let t_max = points.iter().map(|m| m.median_ms).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("prefill, shape {shape}"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (n_min / 1.3..n_max * 1.3).log_scale(),
            (t_min / 2.0..t_max * 2.0).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("sequence length N")
        .y_desc("median ms (log)")
        .draw()
        .map_err(|e| e.to_string())?;
    for imp in Impl::ALL {
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter(|m| m.imp == imp)
            .map(|m| (m.n as f64, m.median_ms))
            .collect();
        if series.is_empty() {
            continue;
        }
        let style = colour(imp).stroke_width(2);
        chart
            .draw_series(LineSeries::new(series.clone(), style))
            .map_err(|e| e.to_string())?
            .label(imp.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour(imp).filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())
}
