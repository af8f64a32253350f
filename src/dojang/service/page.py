"""The public web page at ``/``: paste text or drop a file, get a verdict card (Korean or English)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dojang</title>
<style>
 body{font-family:system-ui,-apple-system,"Noto Sans KR",sans-serif;max-width:860px;margin:2rem auto;padding:0 1rem;color:#1b1f24}
 h1{font-size:1.5rem} textarea{width:100%;min-height:9rem;font:inherit;padding:.5rem;box-sizing:border-box}
 .row{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap;margin:.5rem 0}
 button{font:inherit;padding:.4rem 1rem;cursor:pointer} input[type=password]{font:inherit;padding:.3rem;width:22rem}
 #drop{border:2px dashed #8a94a6;border-radius:8px;padding:1.2rem;text-align:center;margin:.8rem 0}
 #drop.over{background:#eef4ff}
 .card{border-radius:10px;padding:1rem 1.2rem;margin:1rem 0;border:1px solid #ccd}
 .detected{background:#fff1f0;border-color:#e5484d} .not_detected{background:#f1f8f4;border-color:#3e9b5f}
 .inconclusive{background:#fff8e6;border-color:#d9a400} .error{background:#f4f4f4;border-color:#888}
 .card h2{margin:.1rem 0 .4rem 0;font-size:1.3rem} dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
 dt{font-weight:600} mark{background:#ffd6a5} #spans{white-space:pre-wrap;line-height:1.5}
 .muted{color:#5b6472;font-size:.9rem} [hidden]{display:none!important}
</style>
</head>
<body>
<h1 data-i18n="title">dojang: check content for AI watermarks and Content Credentials</h1>
<p class="muted" data-i18n="intro"></p>
<div class="row"><label for="token" data-i18n="token">API token (optional)</label>
 <input id="token" type="password" autocomplete="off" placeholder="dj_..."></div>
<textarea id="text" data-i18n-placeholder="paste"></textarea>
<div class="row"><button id="check-text" data-i18n="checkText">Check text</button></div>
<div id="drop"><span data-i18n="drop">Drop an image or a text file here, or</span>
 <input id="file" type="file" accept="image/png,image/jpeg,image/webp,text/plain"></div>
<div id="busy" class="muted" hidden data-i18n="busy">Checking...</div>
<section id="verdict" class="card" hidden>
 <h2 id="verdict-title"></h2><p id="verdict-text"></p>
 <dl><dt data-i18n="provider">Provider</dt><dd id="provider">-</dd>
  <dt data-i18n="pvalue">False-positive probability</dt><dd id="pvalue">-</dd></dl>
</section>
<section id="spans-card" class="card" hidden><h2 data-i18n="spansTitle">Marked passages</h2><div id="spans"></div></section>
<section id="c2pa" class="card" hidden>
 <h2 data-i18n="c2paTitle">Content Credentials (C2PA)</h2>
 <dl><dt data-i18n="state">State</dt><dd id="c2pa-state"></dd>
  <dt data-i18n="signer">Signer</dt><dd id="c2pa-signer"></dd>
  <dt data-i18n="trusted">Trusted</dt><dd id="c2pa-trusted"></dd>
  <dt data-i18n="signedAt">Signed</dt><dd id="c2pa-time"></dd>
  <dt data-i18n="ai">AI-generated</dt><dd id="c2pa-ai"></dd>
  <dt data-i18n="actions">Actions</dt><dd id="c2pa-actions"></dd>
  <dt data-i18n="validation">Validation</dt><dd id="c2pa-validation"></dd></dl>
 <p id="c2pa-reason" class="muted"></p>
</section>
<div class="row"><button id="export" hidden data-i18n="export">Export JSON</button></div>
<script>
const T = {
 en: {title:"dojang: check content for AI watermarks and Content Credentials",
  intro:"Paste a text or drop a file. The service checks it against the watermark keys of every registered AI provider and reads its Content Credentials.",
  token:"API token (optional)", paste:"Paste text here", checkText:"Check text", drop:"Drop an image or a text file here, or", busy:"Checking...",
  provider:"Provider", pvalue:"False-positive probability", spansTitle:"Marked passages", c2paTitle:"Content Credentials (C2PA)",
  state:"State", signer:"Signer", trusted:"Trusted", signedAt:"Signed", ai:"AI-generated", actions:"Actions", validation:"Validation",
  export:"Export JSON", yes:"yes", no:"no", unknown:"unknown", notShown:"shown only to the key's owner",
  detected:"Detected", not_detected:"Not detected", inconclusive:"Inconclusive", error:"Could not check",
  detectedText:"This content carries the watermark of {p}. Content without it would score this high with a probability below the service's false-positive rate.",
  not_detectedText:"No watermark of a registered provider was found. This does not mean a person made it: it may come from a model that does not watermark, or it was edited heavily.",
  inconclusiveText:"There is too little to decide, or the content could not be read.",
  states:{trusted:"valid, trusted signer", valid:"valid, but the signer is not in the trust list", invalid:"invalid: changed after signing, not attributed to the signer", recovered:"recovered from the watermark (the file had no credentials)", no_credential:"no Content Credentials"}},
 ko: {title:"dojang: AI 워터마크와 콘텐츠 자격 증명 확인",
  intro:"텍스트를 붙여 넣거나 파일을 끌어다 놓으세요. 등록된 모든 AI 제공자의 워터마크 키로 확인하고 콘텐츠 자격 증명(C2PA)을 읽습니다.",
  token:"API 토큰 (선택)", paste:"여기에 텍스트를 붙여 넣으세요", checkText:"텍스트 확인", drop:"이미지나 텍스트 파일을 여기에 끌어다 놓거나", busy:"확인 중...",
  provider:"제공자", pvalue:"오탐 확률", spansTitle:"워터마크가 있는 부분", c2paTitle:"콘텐츠 자격 증명 (C2PA)",
  state:"상태", signer:"서명자", trusted:"신뢰", signedAt:"서명 시각", ai:"AI 생성", actions:"작업", validation:"검증",
  export:"JSON 내보내기", yes:"예", no:"아니요", unknown:"알 수 없음", notShown:"키 소유자에게만 표시됩니다",
  detected:"탐지됨", not_detected:"탐지되지 않음", inconclusive:"판단 불가", error:"확인할 수 없음",
  detectedText:"이 콘텐츠에는 {p}의 워터마크가 있습니다. 워터마크가 없는 콘텐츠가 이만큼 높은 점수를 받을 확률은 서비스의 오탐률보다 낮습니다.",
  not_detectedText:"등록된 제공자의 워터마크를 찾지 못했습니다. 사람이 만들었다는 뜻은 아닙니다. 워터마크를 넣지 않는 모델이 만들었거나 많이 편집되었을 수 있습니다.",
  inconclusiveText:"판단하기에 내용이 너무 적거나 콘텐츠를 읽을 수 없습니다.",
  states:{trusted:"유효, 신뢰할 수 있는 서명자", valid:"유효하지만 서명자가 신뢰 목록에 없음", invalid:"유효하지 않음: 서명 후 변경되어 서명자에게 귀속되지 않음", recovered:"워터마크로 복구됨 (파일에 자격 증명이 없었음)", no_credential:"콘텐츠 자격 증명 없음"}}
};
const lang = (navigator.language || "en").toLowerCase().startsWith("ko") ? "ko" : "en";
const t = T[lang]; document.documentElement.lang = lang;
document.querySelectorAll("[data-i18n]").forEach(el => { el.textContent = t[el.dataset.i18n]; });
document.querySelectorAll("[data-i18n-placeholder]").forEach(el => { el.placeholder = t[el.dataset.i18nPlaceholder]; });
const $ = id => document.getElementById(id);
const tok = $("token"); tok.value = localStorage.getItem("dojang-token") || "";
tok.addEventListener("change", () => localStorage.setItem("dojang-token", tok.value.trim()));
let last = null, lastText = "";
function headers(json) { const h = {}; if (json) h["Content-Type"] = "application/json";
 const v = tok.value.trim(); if (v) h["Authorization"] = "Bearer " + v; return h; }
function setText(id, v) { $(id).textContent = (v === null || v === undefined || v === "") ? "-" : v; }
function render(res, text) {
 last = res; $("export").hidden = false;
 const wm = res.watermark !== undefined ? res.watermark : res;
 const verdict = wm ? wm.verdict : "not_detected";
 const card = $("verdict"); card.hidden = false; card.className = "card " + verdict;
 $("verdict-title").textContent = t[verdict] || verdict;
 $("verdict-text").textContent = (t[verdict + "Text"] || "").replace("{p}", (wm && wm.provider) || "?");
 setText("provider", wm && wm.provider);
 setText("pvalue", wm && wm.p_value !== undefined ? Number(wm.p_value).toExponential(2) : (wm && wm.verdict === "detected" ? t.notShown : null));
 const spans = (wm && wm.spans) || [];
 if (text && spans.length) {
  const box = $("spans"); box.textContent = ""; let pos = 0;
  for (const s of spans) { box.append(document.createTextNode(text.slice(pos, s.start)));
   const m = document.createElement("mark"); m.textContent = text.slice(s.start, s.end); box.append(m); pos = s.end; }
  box.append(document.createTextNode(text.slice(pos))); $("spans-card").hidden = false;
 } else { $("spans-card").hidden = true; }
 if (res.state !== undefined) {
  $("c2pa").hidden = false;
  setText("c2pa-state", t.states[res.state] || res.state);
  setText("c2pa-signer", res.signer && res.signer.name);
  setText("c2pa-trusted", res.signer ? (res.signer.trusted ? t.yes : t.no) : null);
  setText("c2pa-time", res.signed_at);
  setText("c2pa-ai", res.ai_generated === true ? t.yes : (res.ai_generated === false ? t.no : t.unknown));
  setText("c2pa-actions", (res.actions || []).map(a => a.action + (a.softwareAgent ? " (" + a.softwareAgent + ")" : "")).join(", "));
  setText("c2pa-validation", (res.validation_codes || []).join(", ") || "ok");
  $("c2pa-reason").textContent = res.reason || "";
 } else { $("c2pa").hidden = true; }
}
function fail(message) { const card = $("verdict"); card.hidden = false; card.className = "card error";
 $("verdict-title").textContent = t.error; $("verdict-text").textContent = message; $("c2pa").hidden = true; $("spans-card").hidden = true; }
async function call(url, opts, text) {
 $("busy").hidden = false;
 try { const r = await fetch(url, opts); const body = await r.json().catch(() => ({detail: r.statusText}));
  if (!r.ok) fail(body.detail || r.statusText); else render(body, text);
 } catch (e) { fail(String(e)); } finally { $("busy").hidden = true; }
}
$("check-text").addEventListener("click", () => { lastText = $("text").value;
 call("/v1/text/detect", {method:"POST", headers:headers(true), body:JSON.stringify({text:lastText})}, lastText); });
async function sendFile(f) { const fd = new FormData(); fd.append("file", f);
 const text = f.type.startsWith("text/") ? await f.text() : null; call("/v1/verify", {method:"POST", headers:headers(false), body:fd}, text); }
$("file").addEventListener("change", e => { if (e.target.files.length) sendFile(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files.length) sendFile(e.dataTransfer.files[0]); });
$("export").addEventListener("click", () => { const blob = new Blob([JSON.stringify(last, null, 2)], {type:"application/json"});
 const a = document.createElement("a"); a.href = URL.createObjectURL(blob); a.download = "dojang-result.json"; a.click(); });
</script>
</body>
</html>
"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> str:
    return PAGE
