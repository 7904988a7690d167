//! Report: the run's charts, each as PNG and SVG. Works on plain result data (names,
//! counts, scores, projected points); knows nothing of polars or linfa.
//!
//! PNG text is drawn with a bundled font (WenQuanYi Micro Hei, Apache-2.0 or GPLv3 with
//! the font exception) that covers Latin and CJK, so charts render the same on any
//! machine, with or without fonts installed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod html;
pub mod page;
pub mod pca;
pub mod text;

use crate::cluster::KScore;
pub use crate::format::{tr, Lang};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("cannot draw chart {file}: {message}")]
    Draw { file: PathBuf, message: String },
    #[error("the bundled chart font could not be loaded")]
    Font,
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

pub const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/wqy-microhei.ttc");
pub const FONT_FAMILY: &str = "sans-serif";

static FONT: Once = Once::new();

fn register_font() -> Result<(), ReportError> {
    let mut ok = true;
    FONT.call_once(|| {
        ok = plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok();
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

/// Text in the run's language.
/// A service plan for a class of clients (服务方案).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServicePlan {
    /// A segment id (V1, B2), or words that a segment's English name contains
    /// ("high value", "late payer").
    pub applies_to: String,
    pub content: String,
    pub cycle: String,
    pub fee_standard: String,
    pub owner_team: String,
}

/// Everything the charts show.
#[derive(Debug, Clone)]
pub struct ChartData {
    pub lang: Lang,
    pub k_scores: Vec<KScore>,
    pub chosen_k: Option<usize>,
    /// (x, y, behaviour segment) of a sample of clients in the first two principal components.
    pub scatter: Vec<(f64, f64, usize)>,
    pub behaviour_names: Vec<String>,
    pub behaviour_sizes: Vec<usize>,
    pub value_names: Vec<String>,
    pub value_sizes: Vec<usize>,
    /// Feature names and the centroid z-score of each behaviour segment.
    pub profile_features: Vec<String>,
    pub profile: Vec<Vec<f64>>,
    /// Share of fees in the last 12 months per value tier.
    pub revenue_share: Vec<f64>,
}

/// The chart files written, by title.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChartFile {
    pub title: String,
    pub png: String,
    pub svg: String,
}

const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Writes every chart into `dir` as PNG and SVG.
pub fn write_charts(dir: &Path, data: &ChartData) -> Result<Vec<ChartFile>, ReportError> {
    register_font()?;
    let l = data.lang;
    let mut files = Vec::new();
    if !data.k_scores.is_empty() {
        let title = tr(l, "Choosing the number of behaviour segments", "行为分群数量的选择");
        files.push(save(dir, "k_selection", &title, (1200, 420), |root| {
            k_selection(root, data, &title)
        })?);
    }
    if !data.scatter.is_empty() {
        let title = tr(l, "Behaviour segments (PCA projection)", "行为分群（主成分投影）");
        files.push(save(dir, "segments_pca", &title, (1000, 760), |root| {
            scatter(root, data, &title)
        })?);
    }
    let title = tr(l, "Segment sizes (clients)", "各分群客户数");
    files.push(save(dir, "segment_sizes", &title, (1100, 520), |root| {
        sizes(root, data, &title)
    })?);
    if !data.profile.is_empty() {
        let title = tr(l, "Behaviour segment profiles (z-scores)", "行为分群特征画像（标准分）");
        let height = 140 + 70 * data.profile.len() as u32;
        files.push(save(dir, "profile_heatmap", &title, (1200, height), |root| {
            heatmap(root, data, &title)
        })?);
    }
    let title = tr(l, "Revenue share by value tier", "各价值层级收入占比");
    files.push(save(dir, "revenue_share", &title, (900, 480), |root| {
        revenue(root, data, &title)
    })?);
    Ok(files)
}

/// Draws one chart on both backends. Plotters' backends are different types, so the
/// drawing code is a generic function called twice.
fn save(
    dir: &Path,
    stem: &str,
    title: &str,
    size: (u32, u32),
    draw: impl Fn(&mut dyn ChartTarget) -> DrawResult,
) -> Result<ChartFile, ReportError> {
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        let mut target = Target(root);
        draw(&mut target).map_err(|message| ReportError::Draw {
            file: png.clone(),
            message,
        })?;
        target.0.present().map_err(|e| ReportError::Draw {
            file: png.clone(),
            message: err(e),
        })?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        let mut target = Target(root);
        draw(&mut target).map_err(|message| ReportError::Draw {
            file: svg.clone(),
            message,
        })?;
        target.0.present().map_err(|e| ReportError::Draw {
            file: svg.clone(),
            message: err(e),
        })?;
    }
    Ok(ChartFile {
        title: title.to_string(),
        png: format!("charts/{stem}.png"),
        svg: format!("charts/{stem}.svg"),
    })
}

struct Target<DB: DrawingBackend>(DrawingArea<DB, Shift>);

/// The few drawing operations the charts need, over either backend.
trait ChartTarget {
    fn with(&mut self, f: &mut dyn FnMut(&mut dyn AnyArea) -> DrawResult) -> DrawResult;
}

impl<DB: DrawingBackend> ChartTarget for Target<DB> {
    fn with(&mut self, f: &mut dyn FnMut(&mut dyn AnyArea) -> DrawResult) -> DrawResult {
        f(&mut self.0)
    }
}

/// Object-safe drawing primitives (rectangles, circles, lines and text in pixels).
trait AnyArea {
    fn fill(&mut self, c: RGBColor) -> DrawResult;
    fn rect(&mut self, a: (i32, i32), b: (i32, i32), c: RGBAColor, filled: bool) -> DrawResult;
    fn circle(&mut self, at: (i32, i32), r: i32, c: RGBAColor) -> DrawResult;
    fn line(&mut self, pts: Vec<(i32, i32)>, c: RGBColor, width: u32) -> DrawResult;
    fn text(&mut self, s: &str, at: (i32, i32), size: f64, c: RGBColor, anchor: (HPos, VPos)) -> DrawResult;
    fn size(&self) -> (u32, u32);
}

impl<DB: DrawingBackend> AnyArea for DrawingArea<DB, Shift> {
    fn fill(&mut self, c: RGBColor) -> DrawResult {
        DrawingArea::fill(self, &c).map_err(err)
    }
    fn rect(&mut self, a: (i32, i32), b: (i32, i32), c: RGBAColor, filled: bool) -> DrawResult {
        let style = if filled { c.filled() } else { c.stroke_width(1) };
        self.draw(&Rectangle::new([a, b], style)).map_err(err)
    }
    fn circle(&mut self, at: (i32, i32), r: i32, c: RGBAColor) -> DrawResult {
        self.draw(&Circle::new(at, r, c.filled())).map_err(err)
    }
    fn line(&mut self, pts: Vec<(i32, i32)>, c: RGBColor, width: u32) -> DrawResult {
        self.draw(&PathElement::new(pts, c.stroke_width(width))).map_err(err)
    }
    fn text(&mut self, s: &str, at: (i32, i32), size: f64, c: RGBColor, anchor: (HPos, VPos)) -> DrawResult {
        let style = TextStyle::from((FONT_FAMILY, size).into_font())
            .color(&c)
            .pos(Pos::new(anchor.0, anchor.1));
        self.draw(&Text::new(s.to_string(), at, style)).map_err(err)
    }
    fn size(&self) -> (u32, u32) {
        self.dim_in_pixel()
    }
}

const LEFT: (HPos, VPos) = (HPos::Left, VPos::Center);
const RIGHT: (HPos, VPos) = (HPos::Right, VPos::Center);
const CENTRE: (HPos, VPos) = (HPos::Center, VPos::Center);
const GREY: RGBColor = RGBColor(90, 90, 90);
const LIGHT: RGBColor = RGBColor(225, 225, 225);

/// A plotting frame in pixels with linear axes.
struct Frame {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
    xr: (f64, f64),
    yr: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64, y: f64) -> (i32, i32) {
        let fx = (x - self.xr.0) / (self.xr.1 - self.xr.0).max(1e-12);
        let fy = (y - self.yr.0) / (self.yr.1 - self.yr.0).max(1e-12);
        (
            self.x0 + (fx * (self.x1 - self.x0) as f64).round() as i32,
            self.y1 - (fy * (self.y1 - self.y0) as f64).round() as i32,
        )
    }

    fn axes(&self, a: &mut dyn AnyArea, xticks: &[(f64, String)], yticks: usize) -> DrawResult {
        for i in 0..=yticks {
            let v = self.yr.0 + (self.yr.1 - self.yr.0) * i as f64 / yticks as f64;
            let (_, y) = self.px(self.xr.0, v);
            a.line(vec![(self.x0, y), (self.x1, y)], LIGHT, 1)?;
            a.text(&tick(v), (self.x0 - 6, y), 13.0, GREY, RIGHT)?;
        }
        for (v, label) in xticks {
            let (x, _) = self.px(*v, self.yr.0);
            a.text(label, (x, self.y1 + 14), 13.0, GREY, CENTRE)?;
        }
        a.line(vec![(self.x0, self.y1), (self.x1, self.y1)], GREY, 1)?;
        a.line(vec![(self.x0, self.y0), (self.x0, self.y1)], GREY, 1)
    }
}

fn tick(v: f64) -> String {
    if v.abs() >= 1000.0 {
        crate::format::human(v)
    } else if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    (lo - pad, hi + pad)
}

fn title_bar(a: &mut dyn AnyArea, title: &str) -> DrawResult {
    a.fill(WHITE)?;
    let (w, _) = a.size();
    a.text(title, (w as i32 / 2, 24), 22.0, BLACK, CENTRE)
}

fn k_selection(t: &mut dyn ChartTarget, d: &ChartData, title: &str) -> DrawResult {
    t.with(&mut |a| {
        title_bar(a, title)?;
        let (w, h) = a.size();
        let l = d.lang;
        let panels: [(String, Box<dyn Fn(&KScore) -> f64>); 3] = [
            (
                tr(l, "silhouette (higher is better)", "轮廓系数（越高越好）"),
                Box::new(|s| s.silhouette),
            ),
            (
                tr(
                    l,
                    "Calinski-Harabasz (higher is better)",
                    "Calinski-Harabasz 指数（越高越好）",
                ),
                Box::new(|s| s.calinski_harabasz),
            ),
            (
                tr(l, "Davies-Bouldin (lower is better)", "Davies-Bouldin 指数（越低越好）"),
                Box::new(|s| s.davies_bouldin),
            ),
        ];
        let pw = w as i32 / 3;
        for (p, (name, get)) in panels.iter().enumerate() {
            let ks: Vec<f64> = d.k_scores.iter().map(|s| s.k as f64).collect();
            let ys: Vec<f64> = d.k_scores.iter().map(|s| get(s)).collect();
            let f = Frame {
                x0: p as i32 * pw + 70,
                x1: (p as i32 + 1) * pw - 20,
                y0: 80,
                y1: h as i32 - 50,
                xr: range(ks.iter().copied()),
                yr: range(ys.iter().copied()),
            };
            a.text(name, ((f.x0 + f.x1) / 2, 58), 15.0, BLACK, CENTRE)?;
            let xt: Vec<(f64, String)> = ks.iter().map(|k| (*k, format!("k={k}"))).collect();
            f.axes(a, &xt, 4)?;
            let pts: Vec<(i32, i32)> = ks.iter().zip(&ys).map(|(k, y)| f.px(*k, *y)).collect();
            a.line(pts.clone(), colour(0), 2)?;
            for (i, pt) in pts.iter().enumerate() {
                let chosen = d.chosen_k == Some(d.k_scores[i].k);
                let c = if chosen { colour(3) } else { colour(0) };
                a.circle(*pt, if chosen { 7 } else { 4 }, c.to_rgba())?;
            }
        }
        if let Some(k) = d.chosen_k {
            let note = tr(l, &format!("chosen: k = {k}"), &format!("选定：k = {k}"));
            a.text(&note, (w as i32 - 20, h as i32 - 16), 14.0, colour(3), RIGHT)?;
        }
        Ok(())
    })
}

fn legend(a: &mut dyn AnyArea, names: &[String], x: i32, y: i32) -> DrawResult {
    for (i, n) in names.iter().enumerate() {
        let yy = y + i as i32 * 22;
        a.rect((x, yy - 7), (x + 14, yy + 7), colour(i).to_rgba(), true)?;
        a.text(n, (x + 20, yy), 14.0, BLACK, LEFT)?;
    }
    Ok(())
}

fn scatter(t: &mut dyn ChartTarget, d: &ChartData, title: &str) -> DrawResult {
    t.with(&mut |a| {
        title_bar(a, title)?;
        let (w, h) = a.size();
        let f = Frame {
            x0: 70,
            x1: w as i32 - 300,
            y0: 60,
            y1: h as i32 - 50,
            xr: range(d.scatter.iter().map(|p| p.0)),
            yr: range(d.scatter.iter().map(|p| p.1)),
        };
        f.axes(a, &[], 5)?;
        for &(x, y, s) in &d.scatter {
            a.circle(f.px(x, y), 2, colour(s).mix(0.55))?;
        }
        a.text(
            &tr(d.lang, "PC1", "主成分1"),
            ((f.x0 + f.x1) / 2, h as i32 - 20),
            14.0,
            GREY,
            CENTRE,
        )?;
        a.text(
            &tr(d.lang, "PC2", "主成分2"),
            (20, (f.y0 + f.y1) / 2),
            14.0,
            GREY,
            CENTRE,
        )?;
        legend(a, &d.behaviour_names, w as i32 - 285, 80)
    })
}

fn bars(
    a: &mut dyn AnyArea,
    names: &[String],
    values: &[f64],
    labels: &[String],
    area: (i32, i32, i32, i32),
    first_colour: usize,
) -> DrawResult {
    let (x0, y0, x1, y1) = area;
    let max = values.iter().cloned().fold(0.0, f64::max).max(1e-12);
    let n = names.len().max(1) as i32;
    let row = (y1 - y0) / n;
    let label_w = 260;
    for (i, name) in names.iter().enumerate() {
        let y = y0 + i as i32 * row;
        let len = ((values[i] / max) * (x1 - x0 - label_w - 80) as f64) as i32;
        a.text(name, (x0 + label_w - 8, y + row / 2), 14.0, BLACK, RIGHT)?;
        a.rect(
            (x0 + label_w, y + 4),
            (x0 + label_w + len.max(1), y + row - 4),
            colour(first_colour + i).to_rgba(),
            true,
        )?;
        a.text(&labels[i], (x0 + label_w + len + 6, y + row / 2), 13.0, GREY, LEFT)?;
    }
    Ok(())
}

fn sizes(t: &mut dyn ChartTarget, d: &ChartData, title: &str) -> DrawResult {
    t.with(&mut |a| {
        title_bar(a, title)?;
        let (w, h) = a.size();
        let half = w as i32 / 2;
        let l = d.lang;
        let as_f = |v: &[usize]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
        let total = |v: &[usize]| v.iter().sum::<usize>().max(1) as f64;
        let lab = |v: &[usize]| {
            v.iter()
                .map(|x| format!("{x} ({:.0}%)", 100.0 * *x as f64 / total(v)))
                .collect::<Vec<_>>()
        };
        a.text(&tr(l, "value tiers", "价值分层"), (half / 2, 60), 16.0, BLACK, CENTRE)?;
        bars(
            a,
            &d.value_names,
            &as_f(&d.value_sizes),
            &lab(&d.value_sizes),
            (10, 80, half - 10, h as i32 - 20),
            0,
        )?;
        if !d.behaviour_names.is_empty() {
            a.text(
                &tr(l, "behaviour segments", "行为分群"),
                (half + half / 2, 60),
                16.0,
                BLACK,
                CENTRE,
            )?;
            bars(
                a,
                &d.behaviour_names,
                &as_f(&d.behaviour_sizes),
                &lab(&d.behaviour_sizes),
                (half, 80, w as i32 - 10, h as i32 - 20),
                0,
            )?;
        }
        Ok(())
    })
}

/// Blue for below average, red for above, white at the mean.
fn diverging(z: f64) -> RGBColor {
    let t = (z / 2.0).clamp(-1.0, 1.0);
    let mix = |a: u8, b: u8, t: f64| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    if t >= 0.0 {
        RGBColor(mix(255, 214, t), mix(255, 39, t), mix(255, 40, t))
    } else {
        RGBColor(mix(255, 31, -t), mix(255, 119, -t), mix(255, 180, -t))
    }
}

fn heatmap(t: &mut dyn ChartTarget, d: &ChartData, title: &str) -> DrawResult {
    t.with(&mut |a| {
        title_bar(a, title)?;
        let (w, h) = a.size();
        let (x0, y0) = (300, 90);
        let nf = d.profile_features.len().max(1) as i32;
        let ns = d.profile.len().max(1) as i32;
        let cw = (w as i32 - x0 - 20) / nf;
        let ch = ((h as i32 - y0 - 40) / ns).min(70);
        for (j, f) in d.profile_features.iter().enumerate() {
            let x = x0 + j as i32 * cw + cw / 2;
            // Long names wrap at underscores to fit the column.
            let parts: Vec<&str> = f.splitn(2, '_').collect();
            for (r, p) in parts.iter().enumerate() {
                a.text(p, (x, y0 - 36 + r as i32 * 16), 12.0, BLACK, CENTRE)?;
            }
        }
        for (i, row) in d.profile.iter().enumerate() {
            let y = y0 + i as i32 * ch;
            let name = d.behaviour_names.get(i).cloned().unwrap_or_default();
            a.text(&name, (x0 - 8, y + ch / 2), 13.0, BLACK, RIGHT)?;
            for (j, z) in row.iter().enumerate() {
                let x = x0 + j as i32 * cw;
                a.rect((x, y), (x + cw - 2, y + ch - 2), diverging(*z).to_rgba(), true)?;
                a.text(&format!("{z:+.1}"), (x + cw / 2, y + ch / 2), 13.0, BLACK, CENTRE)?;
            }
        }
        Ok(())
    })
}

fn revenue(t: &mut dyn ChartTarget, d: &ChartData, title: &str) -> DrawResult {
    t.with(&mut |a| {
        title_bar(a, title)?;
        let (w, h) = a.size();
        let labels: Vec<String> = d.revenue_share.iter().map(|s| format!("{:.1}%", s * 100.0)).collect();
        bars(
            a,
            &d.value_names,
            &d.revenue_share,
            &labels,
            (10, 70, w as i32 - 10, h as i32 - 20),
            0,
        )
    })
}

/// A heatmap of clients moving from previous (rows) to current (columns) segments,
/// with counts and the share of each row.
/// A line chart of an analysis's report section (calibration, lift, survival curves).
pub fn write_line_chart(dir: &Path, lang: Lang, c: &crate::analysis::LineChart) -> Result<ChartFile, ReportError> {
    register_font()?;
    let pick = |p: &(String, String)| match lang {
        Lang::En => p.0.clone(),
        Lang::Zh => p.1.clone(),
    };
    let title = pick(&c.title);
    let names: Vec<String> = c.series.iter().map(|s| pick(&s.name)).collect();
    let legend_h = 22 * names.len() as i32;
    let size = (1000u32, 560u32 + legend_h.max(0) as u32);
    save(dir, &c.stem, &title, size, |t| {
        t.with(&mut |a| {
            title_bar(a, &title)?;
            let (w, h) = a.size();
            let all = c.series.iter().flat_map(|s| s.points.iter());
            let (xs, ys): (Vec<f64>, Vec<f64>) = all.map(|p| (p.0, p.1)).unzip();
            let mut xr = range(xs.iter().copied());
            let mut yr = range(ys.iter().copied());
            // Months, shares and probabilities: keep the axes within their natural bounds.
            if xs.iter().all(|x| *x >= 0.0) {
                xr.0 = xr.0.max(0.0);
            }
            if xs.iter().all(|x| (0.0..=1.0).contains(x)) {
                xr.1 = xr.1.min(1.0);
            }
            if ys.iter().all(|y| (0.0..=1.0).contains(y)) {
                yr = (yr.0.max(0.0), yr.1.min(1.0));
            }
            if c.diagonal {
                let lo = xr.0.min(yr.0).max(0.0);
                let hi = xr.1.max(yr.1);
                xr = (lo, hi);
                yr = (lo, hi);
            }
            let f = Frame {
                x0: 90,
                x1: w as i32 - 40,
                y0: 60,
                y1: h as i32 - 90 - legend_h,
                xr,
                yr,
            };
            let xt: Vec<(f64, String)> = (0..=5)
                .map(|i| {
                    let v = xr.0 + (xr.1 - xr.0) * i as f64 / 5.0;
                    (v, tick(v))
                })
                .collect();
            f.axes(a, &xt, 5)?;
            a.text(&pick(&c.x_label), ((f.x0 + f.x1) / 2, f.y1 + 36), 14.0, GREY, CENTRE)?;
            a.text(&pick(&c.y_label), (f.x0, f.y0 - 14), 14.0, GREY, LEFT)?;
            if c.diagonal {
                a.line(vec![f.px(xr.0, xr.0), f.px(xr.1, xr.1)], LIGHT, 2)?;
            }
            for (k, series) in c.series.iter().enumerate() {
                let mut pts = Vec::new();
                for (i, p) in series.points.iter().enumerate() {
                    if c.steps && i > 0 {
                        let prev = series.points[i - 1];
                        pts.push(f.px(p.0, prev.1));
                    }
                    pts.push(f.px(p.0, p.1));
                }
                if pts.len() > 1 && !series.dots {
                    a.line(pts.clone(), colour(k), 2)?;
                }
                if !c.steps {
                    for pt in &pts {
                        a.circle(*pt, 3, colour(k).to_rgba())?;
                    }
                }
            }
            legend(a, &names, f.x0, f.y1 + 64)
        })
    })
}

/// A transition matrix as a chart; `title` is in `lang` already.
pub fn write_transition_chart(
    dir: &Path,
    lang: Lang,
    kind: &str,
    title: &str,
    from: &[String],
    to: &[String],
    counts: &[Vec<usize>],
) -> Result<ChartFile, ReportError> {
    register_font()?;
    let size = (260 + 130 * to.len() as u32, 160 + 60 * from.len() as u32);
    save(dir, &format!("transitions_{kind}"), title, size, |t| {
        t.with(&mut |a| {
            title_bar(a, title)?;
            let (x0, y0) = (220, 110);
            a.text(
                &tr(lang, "previous → current", "上次 → 本次"),
                (20, 70),
                14.0,
                GREY,
                LEFT,
            )?;
            for (j, name) in to.iter().enumerate() {
                a.text(name, (x0 + 130 * j as i32 + 65, y0 - 16), 13.0, BLACK, CENTRE)?;
            }
            for (i, name) in from.iter().enumerate() {
                let y = y0 + 60 * i as i32;
                a.text(name, (x0 - 10, y + 30), 13.0, BLACK, RIGHT)?;
                let total: usize = counts[i].iter().sum::<usize>().max(1);
                for (j, n) in counts[i].iter().enumerate() {
                    let share = *n as f64 / total as f64;
                    let x = x0 + 130 * j as i32;
                    a.rect((x, y), (x + 126, y + 56), diverging(share * 2.0).to_rgba(), true)?;
                    a.text(
                        &format!("{n} ({:.0}%)", share * 100.0),
                        (x + 63, y + 28),
                        13.0,
                        BLACK,
                        CENTRE,
                    )?;
                }
            }
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(lang: Lang) -> ChartData {
        ChartData {
            lang,
            k_scores: (2..5)
                .map(|k| KScore {
                    k,
                    silhouette: 0.1 * k as f64,
                    calinski_harabasz: 100.0 / k as f64,
                    davies_bouldin: 1.0,
                    inertia: 1.0,
                })
                .collect(),
            chosen_k: Some(3),
            scatter: vec![(0.0, 0.0, 0), (1.0, 1.0, 1), (2.0, 0.5, 2)],
            behaviour_names: vec!["a".into(), "b".into(), "c".into()],
            behaviour_sizes: vec![5, 3, 2],
            value_names: vec!["high value".into(), "low value".into()],
            value_sizes: vec![4, 6],
            profile_features: vec!["late_payment_share".into(), "activity_trend".into()],
            profile: vec![vec![1.0, -1.0], vec![0.0, 0.5], vec![-2.0, 3.0]],
            revenue_share: vec![0.7, 0.3],
        }
    }

    #[test]
    fn every_chart_is_png_and_svg_with_title() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_charts(dir.path(), &data(Lang::En)).unwrap();
        assert_eq!(files.len(), 5);
        for f in &files {
            let png = std::fs::read(dir.path().join(f.png.trim_start_matches("charts/"))).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            let svg = std::fs::read_to_string(dir.path().join(f.svg.trim_start_matches("charts/"))).unwrap();
            assert!(svg.contains("<svg"));
            assert!(svg.contains(&f.title), "{} lacks its title", f.svg);
        }
    }

    #[test]
    fn bundled_font_covers_chart_text() {
        use ab_glyph::{Font, FontRef};
        let font = FontRef::try_from_slice(FONT_BYTES).unwrap();
        // Everything a chart can write: titles and labels in both languages, every tier
        // and segment name, numbers.
        let dir = tempfile::tempdir().unwrap();
        let mut texts: Vec<String> = Vec::new();
        for lang in [Lang::En, Lang::Zh] {
            let files = write_charts(dir.path(), &data(lang)).unwrap();
            texts.extend(files.iter().map(|f| f.title.clone()));
            for f in &files {
                let svg = std::fs::read_to_string(dir.path().join(f.svg.trim_start_matches("charts/"))).unwrap();
                // Text nodes of the SVG: what lies between '>' and '</text>'.
                texts.extend(
                    svg.split("</text>")
                        .filter_map(|t| t.rsplit('>').next())
                        .map(String::from),
                );
            }
            let title = tr(
                lang,
                "Value tier transitions since the previous run",
                "与上次相比的价值层级迁移",
            );
            let t = write_transition_chart(
                dir.path(),
                lang,
                "value",
                &title,
                &["V1".into()],
                &["V2".into()],
                &[vec![1]],
            )
            .unwrap();
            texts.push(t.title);
        }
        for k in 2..=10 {
            texts.extend(crate::segments::tier_names(k).into_iter().flat_map(|(en, zh)| [en, zh]));
        }
        texts.extend(
            crate::segments::all_descriptors()
                .into_iter()
                .flat_map(|(en, zh)| [en.to_string(), zh.to_string()]),
        );
        texts.extend(crate::features::CATALOGUE.iter().map(|f| f.label.1.to_string()));
        texts.push("0123456789.,%()=+-→：（）、".into());
        for text in &texts {
            for c in text.chars().filter(|c| !c.is_whitespace()) {
                assert_ne!(font.glyph_id(c).0, 0, "no glyph for {c:?} in {text:?}");
            }
        }
    }
}
