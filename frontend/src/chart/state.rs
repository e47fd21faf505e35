//! What a chart shows of its data, and how the pointer and the keyboard change it: zoom by
//! dragging or with `+`/`-`, the read-out under the pointer or moved by the arrows.

use leptos::prelude::*;

use super::scale::{y_extent, Frame};
use super::{Series, WIDTH};

/// What a chart shows of its data, and how the pointer and the keyboard change it.
#[derive(Clone, Copy)]
pub(super) struct ChartState {
    /// The data window on screen: the zoomed x range, and the y extent of the data in it.
    pub(super) frame: Memo<Frame>,
    /// The x range zoomed to; none: the whole axis.
    pub(super) zoom: RwSignal<Option<(f64, f64)>>,
    /// The data x of the read-out: under the pointer, or moved to by the keyboard.
    pub(super) hover: RwSignal<Option<f64>>,
    /// The x range being dragged over, from where the drag started.
    pub(super) drag: RwSignal<Option<(f64, f64)>>,
    /// The whole x axis, from `x_min` to the planned end.
    pub(super) full_x: Signal<(f64, f64)>,
    pub(super) svg_ref: NodeRef<leptos::svg::Svg>,
}

impl ChartState {
    /// The whole data, unzoomed, with no read-out, for an x axis from `x_min` to `x_max`.
    pub(super) fn new(
        x_min: f64,
        x_max: Signal<f64>,
        series: Signal<Vec<Series>>,
        y_range: Option<(f64, f64)>,
        reference: Option<f64>,
    ) -> Self {
        let zoom = RwSignal::new(None::<(f64, f64)>);
        let full_x = Signal::derive(move || (x_min, x_max.get().max(x_min + 1.0)));
        let frame = Memo::new(move |_| {
            let x = zoom.get().unwrap_or_else(|| full_x.get());
            let y = series.with(|s| y_extent(s, x, y_range, reference));
            Frame { x, y }
        });
        Self {
            frame,
            zoom,
            hover: RwSignal::new(None),
            drag: RwSignal::new(None),
            full_x,
            svg_ref: NodeRef::new(),
        }
    }

    /// The data x under the pointer.
    fn pointer_x(self, ev: &leptos::ev::MouseEvent) -> Option<f64> {
        let svg = self.svg_ref.get_untracked()?;
        let rect = svg.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            return None;
        }
        let px = (f64::from(ev.client_x()) - rect.left()) / rect.width() * WIDTH;
        Some(self.frame.get_untracked().x_at(px))
    }

    /// Shows the x range from `a` to `b`, within the axis; all of it is no zoom.
    fn zoom_to(self, (a, b): (f64, f64)) {
        let (full0, full1) = self.full_x.get();
        let (lo, hi) = (a.min(b).max(full0), a.max(b).min(full1));
        if lo <= full0 && hi >= full1 {
            self.zoom.set(None);
        } else if hi - lo > (full1 - full0) * 1e-3 {
            self.zoom.set(Some((lo, hi)));
        }
    }

    /// A press starts a drag.
    pub(super) fn press(self, ev: &leptos::ev::MouseEvent) {
        if let Some(x) = self.pointer_x(ev) {
            self.drag.set(Some((x, x)));
        }
    }

    /// The read-out follows the pointer, and a drag reaches it.
    pub(super) fn point(self, ev: &leptos::ev::MouseEvent) {
        let Some(x) = self.pointer_x(ev) else { return };
        self.hover.set(Some(x));
        if self.drag.get_untracked().is_some() {
            self.drag.update(|d| d.iter_mut().for_each(|d| d.1 = x));
        }
    }

    /// The end of a drag zooms to the range dragged over.
    pub(super) fn release(self) {
        if let Some((a, b)) = self.drag.get_untracked() {
            let width = self.frame.get_untracked().x;
            // A click is not a zoom: the drag must cover 1% of the window.
            if (b - a).abs() > (width.1 - width.0) * 0.01 {
                self.zoom_to((a, b));
            }
        }
        self.drag.set(None);
    }

    /// Arrows move the read-out, `+`/`-` zoom around it, Escape resets.
    pub(super) fn key(self, ev: &leptos::ev::KeyboardEvent) {
        let (x0, x1) = self.frame.get_untracked().x;
        let span = x1 - x0;
        let at = self.hover.get_untracked().unwrap_or((x0 + x1) / 2.0);
        match ev.key().as_str() {
            "ArrowLeft" => self.hover.set(Some((at - span / 50.0).max(x0))),
            "ArrowRight" => self.hover.set(Some((at + span / 50.0).min(x1))),
            "+" | "=" => self.zoom_to((at - span / 4.0, at + span / 4.0)),
            "-" => self.zoom_to((at - span, at + span)),
            "Escape" => {
                self.zoom.set(None);
                self.hover.set(None);
            }
            _ => return,
        }
        ev.prevent_default();
    }
}
