//! Charts as files: a standalone SVG (title, the chart as drawn, its legend) and a PNG
//! rendered from that SVG by the browser at twice the size, both offered as downloads.

use leptos::wasm_bindgen::closure::Closure;
use leptos::wasm_bindgen::JsCast;
use web_sys::{
    CanvasRenderingContext2d, Element, HtmlAnchorElement, HtmlCanvasElement, HtmlImageElement,
};

use crate::chart::{Series, HEIGHT, WIDTH};

/// One legend entry of an exported chart.
pub(crate) struct LegendItem {
    label: String,
    color: &'static str,
    dash: &'static str,
}

/// The legend of a chart of `series`.
pub(crate) fn legend_items(series: &[Series]) -> Vec<LegendItem> {
    (series.iter())
        .map(|s| LegendItem {
            label: s.label.clone(),
            color: s.color,
            dash: s.dash,
        })
        .collect()
}

const TITLE_HEIGHT: f64 = 24.0;
const LEGEND_ROW: f64 = 18.0;
const LEGEND_COLUMNS: usize = 2;
/// PNG pixels per SVG unit, for sharp text on high-density screens and in papers.
const PNG_SCALE: f64 = 2.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The file's total height for `items` legend entries.
fn height(items: usize) -> f64 {
    let rows = items.div_ceil(LEGEND_COLUMNS);
    TITLE_HEIGHT + HEIGHT + LEGEND_ROW * rows as f64 + 6.0
}

/// A self-contained SVG document: `chart` (already styled by attributes) under `title`, with
/// the legend drawn below it.
fn standalone(chart: &str, title: &str, legend: &[LegendItem]) -> String {
    let total = height(legend.len());
    let column = WIDTH / LEGEND_COLUMNS as f64;
    let entries: String = (legend.iter().enumerate())
        .map(|(i, item)| {
            let x = 8.0 + column * (i % LEGEND_COLUMNS) as f64;
            let y = TITLE_HEIGHT + HEIGHT + 12.0 + LEGEND_ROW * (i / LEGEND_COLUMNS) as f64;
            format!(
                r##"<line x1="{x}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="3" stroke-dasharray="{}"/><text x="{}" y="{}" font-size="11" fill="#1d232b">{}</text>"##,
                x + 20.0,
                y - 4.0,
                y - 4.0,
                item.color,
                item.dash,
                x + 26.0,
                y,
                escape(&item.label)
            )
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" viewBox="0 0 {WIDTH} {total}" font-family="system-ui, sans-serif"><rect width="100%" height="100%" fill="#ffffff"/><text x="8" y="17" font-size="13" font-weight="600" fill="#1d232b">{}</text><g transform="translate(0 {TITLE_HEIGHT})">{chart}</g>{entries}</svg>"##,
        escape(title)
    )
}

/// "Test accuracy: fused output" -> "test-accuracy-fused-output".
fn file_stem(title: &str) -> String {
    let words: Vec<String> = (title.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.join("-")
}

fn svg_document(svg: &Element, title: &str, legend: &[LegendItem]) -> Option<String> {
    let chart = web_sys::XmlSerializer::new()
        .ok()?
        .serialize_to_string(svg)
        .ok()?;
    Some(standalone(&chart, title, legend))
}

fn data_url(svg: &str) -> String {
    let encoded: String = js_sys::encode_uri_component(svg).into();
    format!("data:image/svg+xml;charset=utf-8,{encoded}")
}

/// Makes the browser save `href` as `file`.
fn download(href: &str, file: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Some(link) =
        (document.create_element("a").ok()).and_then(|a| a.dyn_into::<HtmlAnchorElement>().ok())
    else {
        return;
    };
    link.set_href(href);
    link.set_download(file);
    link.click();
}

/// Downloads the chart `svg` as an SVG file, with its title and legend.
pub(crate) fn download_svg(svg: &Element, title: &str, legend: &[LegendItem]) {
    if let Some(document) = svg_document(svg, title, legend) {
        download(&data_url(&document), &format!("{}.svg", file_stem(title)));
    }
}

/// Draws the SVG document into a canvas once the browser has loaded it as an image, then
/// saves the canvas.
pub(crate) fn download_png(svg: &Element, title: &str, legend: &[LegendItem]) {
    let Some(document) = svg_document(svg, title, legend) else {
        return;
    };
    let total = height(legend.len());
    let Ok(image) = HtmlImageElement::new() else {
        return;
    };
    let file = format!("{}.png", file_stem(title));
    let loaded = image.clone();
    let draw = Closure::once_into_js(move || {
        let Some(canvas) = (web_sys::window().and_then(|w| w.document()))
            .and_then(|d| d.create_element("canvas").ok())
            .and_then(|c| c.dyn_into::<HtmlCanvasElement>().ok())
        else {
            return;
        };
        canvas.set_width((WIDTH * PNG_SCALE) as u32);
        canvas.set_height((total * PNG_SCALE) as u32);
        let Some(context) = (canvas.get_context("2d").ok().flatten())
            .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        else {
            return;
        };
        let _ = context.scale(PNG_SCALE, PNG_SCALE);
        let _ = context.draw_image_with_html_image_element(&loaded, 0.0, 0.0);
        if let Ok(png) = canvas.to_data_url_with_type("image/png") {
            download(&png, &file);
        }
    });
    image.set_onload(Some(draw.unchecked_ref()));
    image.set_src(&data_url(&document));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_title_chart_and_an_escaped_legend() {
        let legend = [
            LegendItem {
                label: "#1 MLB <a&b>".into(),
                color: "#1f6fb4",
                dash: "",
            },
            LegendItem {
                label: "#2 joint".into(),
                color: "#d1495b",
                dash: "6 3",
            },
            LegendItem {
                label: "#3 joint".into(),
                color: "#d1495b",
                dash: "2 3",
            },
        ];
        let svg = standalone("<svg></svg>", "Loss & accuracy", &legend);
        assert!(
            svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" width="520" height="366""#),
            "{svg}"
        );
        assert!(svg.contains(">Loss &amp; accuracy</text>"));
        assert!(svg.contains("<g transform=\"translate(0 24)\"><svg></svg></g>"));
        assert!(svg.contains(">#1 MLB &lt;a&amp;b&gt;</text>"));
        assert!(svg.contains(r#"stroke-dasharray="6 3""#));
        assert_eq!(
            file_stem("Test accuracy: fused output"),
            "test-accuracy-fused-output"
        );
    }
}
