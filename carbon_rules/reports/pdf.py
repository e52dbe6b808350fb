"""The PDF of an inventory report: what a person reads, bound to the JSON that is anchored.

The PDF is a rendering of :class:`~carbon_rules.reports.structure.InventoryReport`, never
a second source: every figure comes from the report, and every page carries the
report's hash (of its RFC 8785 JSON) so a reader can tie the paper to the anchored
bytes. The first page has a QR code of the proof link (:func:`proof_link`); a bank or
verifier scans it to fetch the JSON and its proof and checks the hash.

Rendering is deterministic (ReportLab's ``invariant`` mode: no creation date, fixed
document id), so one report gives one PDF on one library build. Chinese text uses the
Adobe CID font ``STSong-Light`` (PDF viewers supply it; nothing is embedded) for all
prose and tables, which may hold Chinese names and sources; the report id, hash and
proof link are in Courier and Helvetica so they extract as plain text.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

import qrcode
import qrcode.constants
from qrcode.image.pil import PilImage
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from carbon_protocol.suites import SuiteName

from .charts import cumulative_chart, emissions_chart
from .structure import InventoryReport, proof_link, report_hash, report_id

__all__ = ["qr_matrix", "qr_png", "render_pdf"]

_CJK = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(_CJK))

_styles = getSampleStyleSheet()
_BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontName=_CJK, fontSize=8.5,
                       leading=11)
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=7, leading=8.5)
_H1 = ParagraphStyle("h1", parent=_styles["Title"], fontName=_CJK, fontSize=16, leading=20)
_H2 = ParagraphStyle("h2", parent=_styles["Heading2"], fontName=_CJK, fontSize=11.5,
                     leading=14, spaceBefore=8)
_MONO = ParagraphStyle("mono", parent=_BODY, fontName="Courier", fontSize=7.5, leading=9.5)
_GRID = TableStyle([
    ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
    ("FONTNAME", (0, 0), (-1, -1), "Helvetica"),
    ("FONTSIZE", (0, 0), (-1, -1), 7.5),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
])


def _qr(payload: str) -> qrcode.QRCode[Any]:
    code: qrcode.QRCode[Any] = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4,
        image_factory=PilImage)
    code.add_data(payload)
    code.make(fit=True)
    return code


def qr_matrix(payload: str) -> list[list[bool]]:
    """The QR modules (quiet zone included) encoding ``payload``."""
    return [list(row) for row in _qr(payload).get_matrix()]


def qr_png(payload: str) -> bytes:
    """A PNG of the QR code of ``payload`` (error correction M)."""
    buf = io.BytesIO()
    _qr(payload).make_image().save(buf, format="PNG")
    return buf.getvalue()


def _p(text: object, style: ParagraphStyle = _CELL) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(header: list[str], rows: list[list[object]], widths: Sequence[float]) -> Table:
    data = [[_p(h) for h in header]] + [[_p(c) for c in row] for row in rows]
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(_GRID)
    return table


def _png(data: bytes, width_mm: float) -> Image:
    img = Image(io.BytesIO(data))
    scale = width_mm * mm / img.drawWidth
    img.drawWidth, img.drawHeight = width_mm * mm, img.drawHeight * scale
    return img


def _story(report: InventoryReport, digest: str, link: str, rid: str) -> list[Flowable]:
    e = report.enterprise
    story: list[Flowable] = [
        Paragraph("温室气体排放报告 Greenhouse gas inventory report", _H1),
        _p(f"{e.name} ({e.id}) - reporting period {report.reporting_period.label} "
           f"({report.reporting_period.start} to {report.reporting_period.end})", _BODY),
        _p("Structure: " + ", ".join(report.standards), _BODY),
        Spacer(1, 3 * mm),
        Table([[_png(qr_png(link), 34),
                [_p(f"Report id: {rid}", _MONO), _p(f"Report hash: {digest}", _MONO),
                 _p(f"Proof: {link}", _MONO),
                 _p("The hash is of the report's RFC 8785 JSON, which the ledger logs and "
                    "anchors; scan the code to fetch the JSON and its proof.", _BODY)]]],
              colWidths=[38 * mm, 132 * mm]),
        Paragraph("1 报告主体 Reporting entity", _H2),
        _table(["Enterprise", "Credit code", "Industry", "Address", "Prepared by"],
               [[e.name, e.credit_code or "-", e.industry or "-", e.address or "-",
                 report.prepared_by]], [40, 32, 30, 40, 28]),
        Paragraph("2 核算边界 Boundary", _H2),
        _p(f"Organisational boundary: {report.boundary.approach.replace('_', ' ')}; "
           f"scopes reported: {', '.join(str(s) for s in report.scopes_reported)}. "
           "Exclusions: " + ("; ".join(report.boundary.exclusions) or "none"), _BODY),
        _table(["Site", "Name"], [[s.id, s.name] for s in report.boundary.sites], [70, 100]),
        Paragraph("3 核算方法 Methodology", _H2),
        _table(["Methodology", "Version", "Registry (chain)", "Parameters hash", "Formulas"],
               [[m.rule.methodology_id, m.rule.version,
                 f"{m.rule.registry} ({m.rule.chain_id})", m.rule.parameters_hash,
                 "; ".join(m.formulas)] for m in report.methodology],
               [28, 14, 45, 50, 33]),
        Paragraph("4 排放量 Emissions (tCO2e)", _H2),
        _table(["Scope 1", "Scope 2", "Total"],
               [[report.emissions.by_scope.scope1, report.emissions.by_scope.scope2,
                 report.emissions.by_scope.total]], [56, 56, 58]),
        Spacer(1, 2 * mm),
        _table(["Source", "Emissions"], [[k.source, k.emissions]
                                         for k in report.emissions.by_source_kind], [85, 85]),
        Spacer(1, 2 * mm),
        _png(emissions_chart(report), 170),
    ]
    cumulative = cumulative_chart(report)
    if cumulative is not None:
        story.append(_png(cumulative, 170))
    story += [
        _table(["Source (inventory#line)", "Kind", "Scope", "Device", "Period", "Emissions"],
               [[r.ref, s.source, r.scope, s.device, s.period, r.emissions]
                for r, s in zip(report.emissions.by_source, report.emission_sources,
                                strict=True)],
               [46, 26, 12, 46, 14, 26]),
        Paragraph("5 活动数据及来源 Activity data and provenance", _H2),
        _table(["Source", "AD", "Metered", "Readings (seq)", "Merkle leaves",
                "Inventory leaf / anchor tx"],
               [[a.ref, f"{a.value} {a.unit}", f"{a.metered} {a.metered_unit}",
                 f"{a.readings} ({a.first_seq}..{a.last_seq})",
                 ", ".join(str(r) for r in a.leaves[:8])
                 + (" ..." if len(a.leaves) > 8 else ""),
                 f"{a.inventory_leaf if a.inventory_leaf is not None else '-'} / "
                 f"{a.anchor_tx or 'not anchored yet'}"] for a in report.activity_data],
               [36, 22, 24, 22, 28, 38]),
        Paragraph("6 排放因子及来源 Emission factors and sources", _H2),
        _table(["Factor", "Value", "Unit", "Measured", "Source (year)"],
               [[f.id, f.value, f.unit, "yes" if f.measured else "default",
                 f"{f.source} ({f.year})"] for f in report.emission_factors],
               [28, 20, 20, 16, 86]),
        Paragraph("7 数据质量 Data quality", _H2),
    ]
    q = report.data_quality
    story.append(_table(["Readings", "Measured", "Estimated", "Manual", "Substituted",
                         "Sequence gaps", "Measured share"],
                        [[q.readings, q.measured, q.estimated, q.manual, q.substituted,
                          q.sequence_gaps, q.measured_share]], [24] * 6 + [26]))
    if report.quota is not None:
        r = report.quota
        quota = r.quota
        origin = (f"on chain, registry {quota.chain.registry}, revision {quota.chain.revision}, "
                  f"document {quota.chain.document}" if quota.chain is not None
                  else "internal planning quota (no regulator quota on chain)")
        if quota.overridden_internal is not None:
            origin += f"; overrides internal quota {quota.overridden_internal.allocation}"
        story += [Paragraph("8 配额 Quota reconciliation", _H2),
                  _p(f"Quota {quota.year}: {quota.allocation} tCO2e ({origin}).", _BODY),
                  _table(["Months", "To date", "Forecast (method)", "Offsets", "Position"],
                         [[r.months_reported, r.emissions_to_date,
                           f"{r.forecast} ({r.forecast_method})", r.offsets,
                           f"{r.position} {r.balance}"]], [20, 34, 46, 30, 40])]
    if report.offsets is not None:
        o = report.offsets
        story += [Paragraph("9 抵消 Offsets (gross and net side by side)", _H2),
                  _table(["Gross total", "Green MWh", "Green reduction", "CCER (cap)",
                          "Net scope 2", "Net total"],
                         [[o.gross.total, o.green_mwh, o.green_reduction,
                           f"{o.ccer} ({o.ccer_cap or 'no cap'})", o.net_scope2, o.net_total]],
                         [28, 26, 30, 30, 28, 28]),
                  Spacer(1, 2 * mm),
                  _table(["Kind", "References", "Quantity", "Reduction", "Basis"],
                         [[a.kind, ", ".join(a.references[:6])
                           + (" ..." if len(a.references) > 6 else ""),
                           f"{a.quantity} {a.unit}", a.reduction, a.basis]
                          for a in o.offsets], [18, 40, 22, 22, 68])]
    story += [Paragraph("10 上链存证 Anchors", _H2),
              _table(["Inventory", "Period", "Leaf", "Anchor (chain, tree size, tx)"],
                     [[a.inventory, a.period, "-" if a.leaf_index is None else a.leaf_index,
                       "not anchored yet" if a.anchor is None else
                       f"chain {a.anchor.chain_id}, tree size {a.anchor.tree_size}, block "
                       f"{a.anchor.block_number}, tx {a.anchor.tx_hash[:34]} "
                       f"{a.anchor.tx_hash[34:]}"] for a in report.anchors],
                     [50, 16, 14, 90])]
    return story


def render_pdf(report: InventoryReport, suite: SuiteName = "sm") -> bytes:
    """The report as PDF bytes, every page stamped with its ``suite`` hash."""
    digest = f"{'sm3' if suite == 'sm' else 'sha256'}:{report_hash(report, suite).hex()}"
    link = proof_link(report, suite)
    rid = report_id(report, suite)

    def stamp(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 6.5)
        canvas.drawString(15 * mm, 8 * mm, f"{rid}  {digest}")
        canvas.drawRightString(195 * mm, 8 * mm, f"page {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
        bottomMargin=15 * mm, invariant=1, title=f"GHG inventory report {rid}",
        author=report.prepared_by, subject=digest, keywords=[digest, link],
        creator="carbon-ledger")
    doc.build(_story(report, digest, link, rid), onFirstPage=stamp, onLaterPages=stamp)
    return buf.getvalue()
