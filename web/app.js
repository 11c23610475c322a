/* codictate web UI: talks only to the app's JSON API (same origin) and its event
 * stream (/api/events). No framework, no build step. Everything the server sends
 * (transcripts above all: they are the user's words) is put on the page with
 * textContent or attributes, never as HTML. */
'use strict';

(() => {
  // ---------------------------------------------------------------- helpers

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  /* el('div', {class: 'a', 'data-id': 'x', text: 'hi'}, child, 'text', null) */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k === 'class') node.className = v;
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else if (k in node && typeof v !== 'string') node[k] = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);

  function debounce(fn, ms) {
    let t = null;
    return (...args) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...args), ms);
    };
  }

  /* Decimal units, as download sizes are quoted: 1100000000 -> "1.1 GB". */
  function fmtBytes(n) {
    if (!isNum(n) || n < 0) return '–';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i++;
    }
    if (i === 0) return `${Math.round(n)} B`;
    return `${n >= 100 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
  }

  function fmtGb(x) {
    if (!isNum(x)) return '–';
    if (Number.isInteger(x)) return String(x);
    return String(x < 1 ? Number(x.toFixed(2)) : Number(x.toFixed(1)));
  }

  /* 75 -> "1 min 15 s", 12 -> "12 s", 4000 -> "1 h 7 min" */
  function fmtDuration(s) {
    if (!isNum(s) || s < 0) return '–';
    s = Math.round(s);
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return m < 10 && s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
    const h = Math.floor(m / 60);
    return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  }

  /* 67.2 -> "1:07" (floor), or with ceil for counting down. */
  function fmtClock(s, round = Math.floor) {
    if (!isNum(s)) return '–';
    s = Math.max(0, round(s));
    const m = Math.floor(s / 60);
    return `${m}:${String(s % 60).padStart(2, '0')}`;
  }

  function fmtMs(ms) {
    if (!isNum(ms)) return null;
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  /* source: the dictation's ("microphone", "file"): a file was not recorded, and
   * there is no "after stop" to it. */
  function fmtTimings(t, source) {
    if (!t || typeof t !== 'object') return '';
    const parts = [];
    const file = source === 'file';
    const add = (label, v) => {
      const s = fmtMs(v);
      if (s) parts.push(`${label} ${s}`);
    };
    if (!file) add('recorded', t.record_ms);
    /* Eager: most of it was transcribed while recording; what the user waited for is
     * the transcription after stop. */
    if (isNum(t.raw_after_stop_ms) && !file) add('transcribed after stop', t.raw_after_stop_ms);
    else add('transcribe', isNum(t.transcribe_ms) ? t.transcribe_ms : t.raw_after_stop_ms);
    if (Array.isArray(t.chunks) && t.chunks.length > 1) parts.push(`${t.chunks.length} chunks`);
    /* Refinement ahead: pieces refined while recording cost nothing after stop. */
    if (isNum(t.pieces_ahead) && t.pieces_ahead > 0)
      add(`refine after stop (${t.pieces} pieces, ${t.pieces_ahead} refined while recording)`, t.refine_ms);
    else add(isNum(t.pieces) && t.pieces > 1 ? `refine (${t.pieces} pieces)` : 'refine', t.refine_ms);
    add(file ? 'total' : 'total after stop', t.after_stop_ms);
    return parts.join(' · ');
  }

  /* Linear RMS 0..1 -> meter fraction: -60 dB is empty, 0 dB is full. */
  function levelFraction(rms) {
    if (!isNum(rms) || rms <= 0) return 0;
    return clamp((20 * Math.log10(rms) + 60) / 60, 0, 1);
  }

  const safeUrl = (u) => (typeof u === 'string' && /^https?:\/\//i.test(u) ? u : null);

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code || null;
    }
  }

  async function request(path, opts) {
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new ApiError('Cannot reach codictate — is `codictate serve` running?', 0, 'offline');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!res.ok) {
      const detail = data && typeof data.detail === 'string' ? data.detail : `${res.status} ${res.statusText}`;
      throw new ApiError(detail, res.status, data && data.code);
    }
    return data;
  }

  const get = (path) => request(path, { headers: { Accept: 'application/json' } });

  /* Every state-changing call: POST with a JSON object body. */
  const post = (path, body = {}) =>
    request(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });

  const modelPath = (id, verb) => `/api/models/${encodeURIComponent(id)}/${verb}`;
  const historyPath = (id, verb) => `/api/history/${encodeURIComponent(id)}/${verb}`;

  // ---------------------------------------------------------------- state

  const HISTORY_PAGE = 100; // history items rendered at first, and per "Show older"

  const state = {
    connected: false,
    everConnected: false,
    status: null, // GET /api/status
    models: null, // GET /api/models
    settings: null, // <Settings>
    dictation: null, // <Dictation>
    refined: { id: null, text: '' }, // streamed `refined` deltas of the current dictation
    warnedFor: undefined, // dictation id whose 30 s toast was shown
    history: [],
    historyShown: HISTORY_PAGE,
    extra: new Map(), // model id -> {speed_bps, eta_s, code, error}
    tokens: new Map(), // model id -> typed Hugging Face token (kept across re-renders)
    settingsDirty: false,
    clearKey: false,
    tab: 'dictate',
  };

  const extraOf = (id) => {
    if (!state.extra.has(id)) state.extra.set(id, {});
    return state.extra.get(id);
  };
  const modelList = () => (state.models && Array.isArray(state.models.models) ? state.models.models : []);
  const findModel = (id) => modelList().find((m) => m.id === id) || null;
  const modelName = (id) => {
    const m = id && findModel(id);
    return m ? m.name || m.id : id;
  };
  const ON_DISK = new Set(['downloaded', 'loading', 'ready', 'load_failed', 'unloaded']);
  const downloaded = (kind) => modelList().filter((m) => m.kind === kind && ON_DISK.has(m.state));

  // ---------------------------------------------------------------- toast

  let toastTimer = null;
  function toast(text, kind = '', ms = 5000) {
    const t = $('#toast');
    t.textContent = text;
    t.className = `toast ${kind}`.trim();
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      t.hidden = true;
    }, ms);
  }

  // ---------------------------------------------------------------- tabs

  const TABS = ['dictate', 'models', 'history', 'settings'];

  function showTab(name, focusTab = false) {
    if (!TABS.includes(name)) name = 'dictate';
    state.tab = name;
    for (const t of TABS) {
      const on = t === name;
      const btn = $(`#tab-${t}`);
      btn.setAttribute('aria-selected', String(on));
      btn.tabIndex = on ? 0 : -1;
      $(`#page-${t}`).hidden = !on;
    }
    if (focusTab) $(`#tab-${name}`).focus();
    document.title = name === 'dictate' ? 'codictate' : `${name[0].toUpperCase()}${name.slice(1)} · codictate`;
  }

  function tabFromHash() {
    const h = location.hash.replace(/^#/, '').toLowerCase();
    return TABS.includes(h) ? h : 'dictate';
  }

  function selectTab(name, focusTab = false) {
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    showTab(name, focusTab);
  }

  function initTabs() {
    for (const t of TABS) $(`#tab-${t}`).addEventListener('click', () => selectTab(t));
    $('.tabs').addEventListener('keydown', (e) => {
      const i = TABS.indexOf(state.tab);
      let next = null;
      if (e.key === 'ArrowRight') next = TABS[(i + 1) % TABS.length];
      else if (e.key === 'ArrowLeft') next = TABS[(i + TABS.length - 1) % TABS.length];
      else if (e.key === 'Home') next = TABS[0];
      else if (e.key === 'End') next = TABS[TABS.length - 1];
      if (next) {
        e.preventDefault();
        selectTab(next, true);
      }
    });
    window.addEventListener('hashchange', () => showTab(tabFromHash()));
    showTab(tabFromHash());
  }

  // ---------------------------------------------------------------- header status

  function renderStatus() {
    const c = $('#conn-status');
    let text;
    let kind = 'idle';
    if (!state.connected && state.everConnected) {
      text = 'Disconnected — reconnecting…';
      kind = 'offline';
    } else if (!state.status) {
      text = state.connected ? 'Connected' : 'Connecting…';
      kind = state.connected ? 'idle' : 'connecting';
    } else {
      const sc = state.status.sidecar || {};
      const chosen = (state.settings && state.settings.llm_model) ||
        (state.models && state.models.in_use && state.models.in_use.llm) || null;
      if (state.settings && state.settings.provider === 'openai') {
        text = `Model: ${state.settings.openai_model || 'remote'} (OpenAI-compatible)`;
        kind = 'ready';
      } else if (sc.model) {
        const ms = sc.model_state || (sc.state === 'running' ? 'ready' : sc.state);
        text = `Model: ${modelName(sc.model)} ${ms === 'loading' ? 'loading…' : ms}`;
        kind = ms === 'ready' ? 'ready' : ms === 'loading' || sc.state === 'starting' ? 'busy' : 'idle';
      } else if (sc.state === 'starting') {
        text = `Model: ${chosen ? modelName(chosen) : 'none'} starting…`;
        kind = 'busy';
      } else {
        text = chosen ? `Model: ${modelName(chosen)} · idle (unloaded)` : 'No model chosen · basic cleanup only';
      }
      if (!state.connected) text += ' · live updates paused';
    }
    c.textContent = text;
    c.dataset.conn = kind;
  }

  function applyStatus(s, withDictation) {
    if (!s || typeof s !== 'object') return;
    state.status = s;
    if (s.settings) setSettings(s.settings);
    if (withDictation && s.dictation) applyDictation(s.dictation);
    renderStatus();
    renderDictation();
  }

  const refreshStatus = debounce(async () => {
    try {
      applyStatus(await get('/api/status'), false);
    } catch (e) {
      /* the event stream reports the outage */
    }
  }, 250);

  // ---------------------------------------------------------------- dictation

  const FINISHED = new Set(['done', 'failed', 'cancelled']);
  const HINTS = {
    idle: '',
    recording: 'Listening…',
    transcribing: 'Transcribing…',
    refining: 'Refining…',
    done: '',
    failed: 'Something went wrong — your words are kept below.',
    cancelled: 'Cancelled.',
  };

  const isFallback = (d) =>
    (d.reason_code !== null && d.reason_code !== undefined && d.reason_code !== 'ok') ||
    (typeof d.fallback_reason === 'string' && d.fallback_reason !== '');

  function applyDictation(d) {
    if (!d || typeof d !== 'object') return;
    const prev = state.dictation;
    if (d.id && state.refined.id !== d.id) state.refined = { id: d.id, text: '' };
    state.dictation = d;
    if (d.state === 'recording' && isNum(d.remaining_s) && d.remaining_s <= 30 && d.remaining_s > 0) warnOnce(d.id);
    if (d.state === 'recording' && d.warned) warnOnce(d.id);
    renderDictation();
    if (prev && prev.state !== d.state && FINISHED.has(d.state)) refreshHistory();
  }

  function warnOnce(id) {
    const key = id || '';
    if (state.warnedFor === key) return;
    state.warnedFor = key;
    toast('30 seconds left — recording stops at the limit.', 'warn', 8000);
  }

  function renderDictation() {
    const d = state.dictation || { state: 'idle' };
    const st = d.state || 'idle';
    const recording = st === 'recording';
    const limit = isNum(d.limit_s) && d.limit_s > 0 ? d.limit_s : state.status && state.status.recording_limit_s;

    const btn = $('#record-btn');
    btn.setAttribute('aria-pressed', String(recording));
    $('.record-label', btn).textContent = recording ? 'Stop' : 'Start recording';
    btn.setAttribute('aria-label', recording ? 'Stop recording' : 'Start recording');

    const area = $('#rec-area');
    area.classList.toggle('recording', recording);
    let left = isNum(d.remaining_s) ? d.remaining_s : null;
    if (left === null && isNum(limit) && isNum(d.elapsed_s)) left = Math.max(0, limit - d.elapsed_s);
    let frac = 1;
    if (recording && isNum(limit) && limit > 0 && left !== null) frac = clamp(left / limit, 0, 1);
    area.dataset.remaining = frac.toFixed(3);
    area.style.setProperty('--remaining', frac.toFixed(4));

    $('#elapsed').textContent = fmtClock(recording || FINISHED.has(st) ? d.elapsed_s || 0 : 0);
    const rem = recording && left !== null ? left : limit;
    $('#remaining').textContent = fmtClock(rem, Math.ceil);

    const lvl = recording ? levelFraction(d.level) : 0;
    const meter = $('#level-meter');
    meter.dataset.level = lvl.toFixed(3);
    meter.setAttribute('aria-valuenow', lvl.toFixed(2));
    meter.style.setProperty('--level', lvl.toFixed(3));

    const pill = $('#dictation-state');
    pill.textContent = st;
    pill.dataset.state = st;
    $('#dictation-hint').textContent = HINTS[st] !== undefined ? HINTS[st] : '';

    // Texts: nothing while recording; raw as soon as it exists; refined streamed,
    // then final. A failure or a fallback shows the raw text and the reason.
    const raw = typeof d.raw === 'string' ? d.raw : '';
    let refined = '';
    let reason = '';
    let reasonIsError = false;
    if (!recording && st !== 'idle') {
      if (st === 'refining') {
        refined = state.refined.id === d.id && state.refined.text ? state.refined.text : d.refined || '';
      } else if (st === 'done') {
        refined = typeof d.refined === 'string' ? d.refined : raw;
        if (isFallback(d)) reason = d.fallback_reason || `Refinement skipped (${d.reason_code}); the transcript is shown as is.`;
      } else if (st === 'failed') {
        refined = typeof d.refined === 'string' && d.refined ? d.refined : raw;
        reason = d.error || d.fallback_reason || 'The dictation failed.';
        reasonIsError = true;
      } else if (st === 'cancelled') {
        refined = d.refined || '';
      }
    } else if (st === 'idle' && d.raw !== undefined && (d.raw || d.refined)) {
      refined = d.refined || raw;
    }
    if (st === 'done' && !refined && !raw && !reason) reason = 'Nothing was heard.';
    $('#raw-text').textContent = recording ? '' : raw;
    $('#refined-text').textContent = refined;
    const r = $('#reason-text');
    r.textContent = reason;
    r.hidden = !reason;
    r.classList.toggle('is-error', reasonIsError);

    $('#copy-btn').disabled = !(refined || raw) || recording;
    $('#timings').textContent = recording ? '' : fmtTimings(d.timings, d.source);
  }

  // `refined` events: {id, delta} pieces of the model's text while it generates,
  // then {id, final: true, text}: the delivered (guarded) text replaces them.
  function onRefinedDelta(ev) {
    if (!ev) return;
    if (ev.final === true && typeof ev.text === 'string') {
      if (state.dictation && state.dictation.id && state.dictation.id !== ev.id) return;
      state.refined = { id: ev.id, text: ev.text };
      $('#refined-text').textContent = ev.text;
      return;
    }
    if (typeof ev.delta !== 'string') return;
    if (state.refined.id !== ev.id) {
      if (state.dictation && state.dictation.id && state.dictation.id !== ev.id) return;
      state.refined = { id: ev.id, text: '' };
    }
    state.refined.text += ev.delta;
    const d = state.dictation;
    if (d && d.id === ev.id && d.state === 'refining') $('#refined-text').textContent = state.refined.text;
  }

  /* The server's warning always shows (it sends one per recording). */
  function onWarn() {
    const d = state.dictation;
    state.warnedFor = undefined;
    warnOnce(d && d.id);
  }

  let lastKeyToggle = 0;
  async function toggleDictation() {
    try {
      applyDictation(await post('/api/dictation/toggle', {}));
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  function isInteractive(t) {
    if (!(t instanceof Element)) return false;
    if (t.isContentEditable) return true;
    return !!t.closest('input, textarea, select, button, a[href], summary, audio, video, dialog, [role="tab"]');
  }

  function initKeyboard() {
    document.addEventListener('keydown', (e) => {
      if (e.code !== 'Space' && e.key !== ' ') return;
      if (e.ctrlKey && e.shiftKey && !e.altKey && !e.metaKey) {
        e.preventDefault();
        if (!e.repeat) {
          lastKeyToggle = performance.now();
          toggleDictation();
        }
        return;
      }
      if (e.ctrlKey || e.shiftKey || e.altKey || e.metaKey) return;
      if (state.tab !== 'dictate' || isInteractive(e.target) || $('#rerefine-dialog').open) return;
      e.preventDefault();
      if (!e.repeat) {
        lastKeyToggle = performance.now();
        toggleDictation();
      }
    });
    // A focused button would also "click" on the shortcut's keyup.
    document.addEventListener('keyup', (e) => {
      if ((e.code === 'Space' || e.key === ' ') && performance.now() - lastKeyToggle < 1500 && isInteractive(e.target))
        e.preventDefault();
    });
  }

  async function copyText(text) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        return true;
      }
    } catch (e) {
      /* fall back below */
    }
    const ta = el('textarea', { readonly: true, 'aria-hidden': 'true', tabindex: '-1' });
    ta.value = text;
    Object.assign(ta.style, { position: 'fixed', top: '0', left: '-9999px', opacity: '0' });
    document.body.append(ta);
    const active = document.activeElement;
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch (e) {
      ok = false;
    }
    ta.remove();
    if (active && active.focus) active.focus();
    return ok;
  }

  async function copyWithFeedback(btn, text) {
    const ok = await copyText(text);
    const old = btn.textContent;
    btn.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => {
      btn.textContent = old;
    }, 1500);
    if (!ok) toast('Could not copy — select the text and copy it by hand.', 'error');
  }

  const MAX_UPLOAD = 100 * 1024 * 1024;

  async function transcribeFile(file) {
    if (!file) return;
    if (file.size > MAX_UPLOAD) {
      toast(`${file.name} is ${fmtBytes(file.size)}; the limit is 100 MB.`, 'error');
      return;
    }
    const type = /^audio\//i.test(file.type) ? file.type : 'application/octet-stream';
    selectTab('dictate');
    $('#dictation-hint').textContent = `Uploading ${file.name}…`;
    try {
      const d = await request('/api/transcribe', {
        method: 'POST',
        headers: { 'Content-Type': type, Accept: 'application/json' },
        body: file,
      });
      applyDictation(d);
    } catch (e) {
      $('#dictation-hint').textContent = '';
      toast(`Could not transcribe ${file.name}: ${e.message}`, 'error', 8000);
    }
  }

  function initDictate() {
    $('#setup-download').addEventListener('click', () => setupDownload());
    $('#setup-models').addEventListener('click', () => selectTab('models', true));
    $('#record-btn').addEventListener('click', (e) => {
      // A keyboard "click" right after the shortcut already toggled: ignore it.
      if (e.detail === 0 && performance.now() - lastKeyToggle < 1500) return;
      toggleDictation();
    });
    $('#copy-btn').addEventListener('click', (e) => {
      const text = $('#refined-text').textContent || $('#raw-text').textContent;
      if (text) copyWithFeedback(e.currentTarget, text);
    });
    const input = $('#file-input');
    input.addEventListener('change', () => {
      const f = input.files && input.files[0];
      input.value = '';
      transcribeFile(f);
    });

    // Drop an audio file anywhere on the Dictate page. Elsewhere a dropped file is
    // refused rather than opened (which would leave the app).
    const zone = $('#drop-zone');
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
    document.addEventListener('dragenter', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      if (state.tab === 'dictate' && depth++ === 0) zone.classList.add('dragging');
    });
    document.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = state.tab === 'dictate' ? 'copy' : 'none';
    });
    document.addEventListener('dragleave', (e) => {
      if (!hasFiles(e)) return;
      if (--depth <= 0) {
        depth = 0;
        zone.classList.remove('dragging');
      }
    });
    document.addEventListener('drop', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      zone.classList.remove('dragging');
      if (state.tab !== 'dictate') return;
      const f = e.dataTransfer.files && e.dataTransfer.files[0];
      transcribeFile(f);
    });
  }

  // ---------------------------------------------------------------- models

  const STATE_LABELS = {
    not_downloaded: 'Not downloaded',
    downloading: 'Downloading…',
    download_failed: 'Download failed',
    downloaded: 'Downloaded',
    loading: 'Loading…',
    ready: 'Ready (loaded)',
    load_failed: 'Could not load',
    unloaded: 'Downloaded (unloaded)',
    damaged: 'Damaged on disk',
  };

  const ERROR_TEXT = {
    disk_space: 'Not enough disk space for this model. Free some space, then retry.',
    checksum: 'The downloaded file is corrupted — download it again.',
    network: 'Network problem — Retry resumes where the download stopped.',
    gated: 'This model needs a Hugging Face token: accept its terms on huggingface.co, then paste a token.',
    cancelled: 'Download cancelled.',
    other: 'The download failed.',
  };

  function guessCode(detail) {
    const s = String(detail || '');
    if (/disk space/i.test(s)) return 'disk_space';
    if (/checksum|sha-?256|corrupt|size mismatch/i.test(s)) return 'checksum';
    if (/gated|\b40[13]\b|token|unauthori[sz]ed|forbidden/i.test(s)) return 'gated';
    if (/cancel/i.test(s)) return 'cancelled';
    if (/network|timed? ?out|connect|resolve|stall|reset|http/i.test(s)) return 'network';
    return 'other';
  }

  function downloadCode(m) {
    if (m.state !== 'download_failed') return null;
    const x = extraOf(m.id);
    return x.code || guessCode(m.detail);
  }

  function percentOf(m) {
    const total = isNum(m.bytes_total) && m.bytes_total > 0 ? m.bytes_total : m.size_bytes;
    if (!isNum(total) || total <= 0 || !isNum(m.bytes_done)) return 0;
    return clamp(Math.floor((m.bytes_done / total) * 100), 0, 100);
  }

  function progressText(m) {
    const x = extraOf(m.id);
    const parts = [`${percentOf(m)}%`];
    if (isNum(x.speed_bps) && x.speed_bps > 0) {
      parts.push(`${fmtBytes(x.speed_bps)}/s`);
      if (isNum(x.eta_s) && x.eta_s >= 0) parts.push(`${fmtDuration(x.eta_s)} left`);
    }
    return parts.join(' · ');
  }

  function buildProgress(m) {
    const pct = percentOf(m);
    const total = isNum(m.bytes_total) && m.bytes_total > 0 ? m.bytes_total : m.size_bytes;
    const bar = el('progress', {
      max: '100',
      value: String(pct),
      'aria-label': `Download of ${m.name || m.id}`,
      'aria-valuetext': `${pct}%, ${fmtBytes(m.bytes_done)} of ${fmtBytes(total)}`,
    });
    return el('div', { class: 'progress', 'data-percent': String(pct) }, bar, el('div', { class: 'progress-text', text: progressText(m) }));
  }

  /* Progress events come up to 10/s: update the bar without rebuilding the card. */
  function updateProgress(card, m) {
    const box = $('.progress', card);
    if (!box) return false;
    const pct = percentOf(m);
    box.dataset.percent = String(pct);
    const bar = $('progress', box);
    bar.value = pct;
    const total = isNum(m.bytes_total) && m.bytes_total > 0 ? m.bytes_total : m.size_bytes;
    bar.setAttribute('aria-valuetext', `${pct}%, ${fmtBytes(m.bytes_done)} of ${fmtBytes(total)}`);
    $('.progress-text', box).textContent = progressText(m);
    return true;
  }

  function buildCard(m) {
    const x = extraOf(m.id);
    const code = downloadCode(m);
    const ramGb = state.models ? state.models.ram_gb : null;
    const card = el('article', {
      class: 'model-card card',
      'data-id': m.id,
      'data-kind': m.kind,
      'data-state': m.state,
      'data-in-use': String(!!m.in_use),
      'aria-label': m.name || m.id,
    });

    const badges = el('div', { class: 'badges' });
    if (m.recommended) badges.append(el('span', { class: 'badge recommended-badge', text: `Recommended for your ${fmtGb(ramGb)} GB` }));
    if (m.in_use) badges.append(el('span', { class: 'badge in-use-badge', text: 'In use' }));
    if (m.gated) badges.append(el('span', { class: 'badge', text: 'Needs token' }));
    if (m.builtin) badges.append(el('span', { class: 'badge builtin-badge', text: 'Built in, works offline' }));
    card.append(
      el('div', { class: 'model-head' }, el('div', {}, el('h3', { class: 'model-name', text: m.name || m.id }), el('div', { class: 'model-id mono', text: m.id }))),
      badges,
    );

    const meta = el('dl', { class: 'model-meta' });
    const row = (k, v) => meta.append(el('dt', { text: k }), el('dd', { text: v }));
    row(m.builtin ? 'Size' : 'Download', fmtBytes(isNum(m.size_bytes) ? m.size_bytes : m.bytes_total));
    row('RAM', isNum(m.ram_gb) ? `${fmtGb(m.ram_gb)} GB` : '–');
    if (m.best_for) row('Best for', m.best_for);
    card.append(meta);

    card.append(el('div', { class: 'model-state', text: STATE_LABELS[m.state] || m.state }));

    if (m.state === 'downloading') card.append(buildProgress(m));

    if (m.state === 'download_failed') {
      const head = ERROR_TEXT[code] || ERROR_TEXT.other;
      const err = el('p', { class: 'model-error', role: 'alert' }, head);
      if (m.detail && m.detail !== head) err.append(el('span', { class: 'detail', text: m.detail }));
      card.append(err);
    } else if (m.state === 'damaged') {
      const head = m.builtin
        ? 'The model file is damaged (cut short or changed since it was installed). Reinstall codictate to repair it.'
        : 'The downloaded file is damaged (cut short or changed on disk since its download). Download it again to repair it.';
      const err = el('p', { class: 'model-error', role: 'alert' }, head);
      if (m.detail) err.append(el('span', { class: 'detail', text: m.detail }));
      card.append(err);
    } else if (m.state === 'load_failed') {
      const err = el('p', { class: 'model-error', role: 'alert' }, 'The model could not be loaded.');
      if (m.detail) err.append(el('span', { class: 'detail', text: m.detail }));
      card.append(err);
    } else if (x.error) {
      card.append(el('p', { class: 'model-error', role: 'alert', text: x.error }));
    } else if (m.state === 'not_downloaded' && isNum(m.bytes_done) && m.bytes_done > 0) {
      card.append(el('p', { class: 'model-note', text: `Partly downloaded: ${fmtBytes(m.bytes_done)} of ${fmtBytes(m.bytes_total || m.size_bytes)}. Download resumes.` }));
    }

    const needsToken = code === 'gated' || (m.gated && (m.state === 'not_downloaded' || m.state === 'download_failed' || m.state === 'damaged'));
    if (needsToken) {
      const inputId = `hf-token-${m.id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
      const input = el('input', {
        class: 'hf-token',
        id: inputId,
        type: 'password',
        placeholder: 'hf_…',
        autocomplete: 'off',
        spellcheck: 'false',
      });
      input.value = state.tokens.get(m.id) || '';
      input.addEventListener('input', () => state.tokens.set(m.id, input.value));
      card.append(el('div', { class: 'token-row' }, el('label', { for: inputId, text: 'Hugging Face token' }), input));
    }

    const lic = safeUrl(m.license_url);
    if (lic) {
      card.append(el('a', { class: 'license-link', href: lic, target: '_blank', rel: 'noopener noreferrer', text: `${(m.name || m.id).split(' ')[0]} terms of use ↗` }));
    }

    const actions = el('div', { class: 'model-actions' });
    const button = (cls, label, variant = '') => actions.append(el('button', { type: 'button', class: `${cls} small ${variant}`.trim(), text: label }));
    switch (m.state) {
      case 'not_downloaded':
        button('download', isNum(m.bytes_done) && m.bytes_done > 0 ? 'Resume download' : 'Download');
        break;
      case 'downloading':
        button('cancel', 'Cancel', 'secondary');
        break;
      case 'damaged':
        if (m.builtin) break;
        button('download', 'Download again (repair)');
        button('delete', 'Delete', 'danger');
        break;
      case 'download_failed':
        button('download', code === 'gated' ? 'Retry with token' : code === 'checksum' ? 'Download again' : 'Retry');
        if (isNum(m.bytes_done) && m.bytes_done > 0) button('delete', 'Delete partial file', 'danger');
        break;
      default:
        if (!m.in_use && m.kind !== 'vad') button('use', 'Use');
        if (m.kind === 'llm' && m.state === 'ready') button('unload', 'Unload', 'secondary');
        if (m.state !== 'ready' && m.state !== 'loading' && !m.builtin) button('delete', 'Delete', 'danger');
    }
    if (actions.childElementCount) card.append(actions);
    return card;
  }

  function renderModels() {
    const data = state.models;
    if (!data) return;
    // Keep focus (a typed token, a focused button) across the rebuild.
    const active = document.activeElement;
    const activeCard = active && active.closest ? active.closest('.model-card') : null;
    const focusId = activeCard ? activeCard.dataset.id : null;
    const focusSel = focusId && active ? (active.matches('input.hf-token') ? 'input.hf-token' : active.tagName === 'BUTTON' ? `button.${active.classList[0]}` : null) : null;

    const boxes = { llm: $('#models-llm'), whisper: $('#models-whisper'), vad: $('#models-vad') };
    const lists = { llm: [], whisper: [], vad: [] };
    for (const m of modelList()) (lists[m.kind] || lists.vad).push(buildCard(m));
    for (const k of Object.keys(boxes)) boxes[k].replaceChildren(...lists[k]);
    $('#models-vad-wrap').hidden = lists.vad.length === 0;

    const inUse = data.in_use || {};
    const parts = [];
    parts.push(`Language model in use: ${inUse.llm ? modelName(inUse.llm) : 'none (basic cleanup only)'}`);
    parts.push(`speech: ${inUse.whisper ? modelName(inUse.whisper) : 'none'}`);
    if (isNum(data.ram_gb)) parts.push(`this computer has ${fmtGb(data.ram_gb)} GB RAM`);
    $('#models-summary').textContent = `${parts.join(' · ')}.`;
    renderSetupNote();

    if (focusId && focusSel) {
      const card = $$('.model-card').find((c) => c.dataset.id === focusId);
      const target = card && $(focusSel, card);
      if (target) target.focus();
    }
  }

  function renderCard(m) {
    const old = $$('.model-card').find((c) => c.dataset.id === m.id);
    if (!old) return renderModels();
    const focused = old.contains(document.activeElement) ? document.activeElement : null;
    const sel = focused ? (focused.matches('input.hf-token') ? 'input.hf-token' : focused.tagName === 'BUTTON' ? `button.${focused.classList[0]}` : null) : null;
    const card = buildCard(m);
    old.replaceWith(card);
    const target = sel && $(sel, card);
    if (target) target.focus();
  }

  /* The Dictate page's first-run note: shown while no whisper model is on disk or
   * chosen, with a button that downloads the recommended one (its progress inline). */
  function renderSetupNote() {
    const box = $('#setup-note');
    const data = state.models;
    const need = !!data && !(data.in_use && data.in_use.whisper) && downloaded('whisper').length === 0;
    box.hidden = !need;
    if (!need) return;
    const recId = data.recommended && data.recommended.whisper;
    const rec = recId ? findModel(recId) : null;
    const btn = $('#setup-download');
    const prog = $('#setup-progress');
    btn.hidden = !rec;
    if (!rec) return;
    const busy = rec.state === 'downloading';
    const size = isNum(rec.bytes_total) && rec.bytes_total > 0 ? rec.bytes_total : rec.size_bytes;
    btn.disabled = busy;
    btn.textContent = busy ? `Downloading ${rec.name || rec.id}…` : `Download ${rec.name || rec.id} (${fmtBytes(size)})`;
    prog.textContent = busy ? progressText(rec) : rec.state === 'download_failed' ? ERROR_TEXT[downloadCode(rec)] || ERROR_TEXT.other : '';
  }

  async function setupDownload() {
    const data = state.models;
    const id = data && data.recommended && data.recommended.whisper;
    if (!id) return;
    const m = findModel(id);
    try {
      await post(modelPath(id, 'download'), {});
    } catch (e) {
      if (e.code !== 'busy') {
        toast(e.message, 'error');
        return;
      }
    }
    if (m) {
      m.state = 'downloading';
      m.detail = null;
      renderCard(m);
    }
    refreshModels();
  }

  async function loadModels() {
    try {
      state.models = await get('/api/models');
      $('#models-error').hidden = true;
      renderModels();
      renderSettingsModels();
      renderStatus();
    } catch (e) {
      const box = $('#models-error');
      box.textContent = `Could not load the models: ${e.message}`;
      box.hidden = false;
    }
  }
  const refreshModels = debounce(loadModels, 200);

  function onModelEvent(ev) {
    if (!ev || !ev.id) return;
    const x = extraOf(ev.id);
    if ('speed_bps' in ev) x.speed_bps = ev.speed_bps;
    if ('eta_s' in ev) x.eta_s = ev.eta_s;
    if (ev.state === 'download_failed') x.code = ev.code || guessCode(ev.detail);
    else x.code = null;
    if (ev.state && ev.state !== 'download_failed') x.error = null;
    const m = findModel(ev.id);
    if (!m) {
      refreshModels();
      return;
    }
    const changed = ev.state && ev.state !== m.state;
    if (ev.state) m.state = ev.state;
    if ('detail' in ev) m.detail = ev.detail;
    if (isNum(ev.bytes_done)) m.bytes_done = ev.bytes_done;
    if (isNum(ev.bytes_total) && ev.bytes_total > 0) m.bytes_total = ev.bytes_total;
    const card = $$('.model-card').find((c) => c.dataset.id === m.id);
    renderSetupNote();
    if (!changed && m.state === 'downloading' && card && updateProgress(card, m)) return;
    renderCard(m);
    if (changed) {
      refreshModels();
      refreshStatus();
      renderSettingsModels();
    }
  }

  async function modelAction(card, action, btn) {
    const id = card.dataset.id;
    const m = findModel(id);
    const x = extraOf(id);
    x.error = null;
    btn.disabled = true;
    try {
      if (action === 'download') {
        const body = {};
        const tokenInput = $('input.hf-token', card);
        const token = tokenInput ? tokenInput.value.trim() : '';
        if (token) body.token = token;
        try {
          await post(modelPath(id, 'download'), body);
        } catch (e) {
          if (e.code !== 'busy') throw e;
        }
        if (m) {
          m.state = 'downloading';
          m.detail = null;
          x.code = null;
          x.speed_bps = null;
          x.eta_s = null;
          renderCard(m);
        }
      } else if (action === 'cancel') {
        await post(modelPath(id, 'cancel'), {});
      } else if (action === 'delete') {
        await post(modelPath(id, 'delete'), {});
      } else if (action === 'use') {
        const s = await post(modelPath(id, 'use'), {});
        if (s && typeof s === 'object' && 'provider' in s) setSettings(s);
        toast(`Now using ${m ? m.name || id : id}.`);
      } else if (action === 'unload') {
        await post(modelPath(id, 'unload'), {});
      }
    } catch (e) {
      x.error = e.message;
      if (m) renderCard(m);
      toast(e.message, 'error');
    } finally {
      btn.disabled = false;
      refreshModels();
      refreshStatus();
    }
  }

  function initModels() {
    $('#page-models').addEventListener('click', (e) => {
      const btn = e.target.closest('button');
      const card = btn && btn.closest('.model-card');
      if (!card) return;
      const action = ['download', 'cancel', 'delete', 'use', 'unload'].find((a) => btn.classList.contains(a));
      if (action) modelAction(card, action, btn);
    });
    $('#page-models').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && e.target.matches('input.hf-token')) {
        e.preventDefault();
        const b = $('button.download', e.target.closest('.model-card'));
        if (b) b.click();
      }
    });
  }

  // ---------------------------------------------------------------- history

  function reasonOf(h) {
    if (h.error) return { text: h.error, error: true };
    if (h.fallback_reason) return { text: h.fallback_reason, error: false };
    if (h.reason_code && h.reason_code !== 'ok') return { text: `Refinement skipped (${h.reason_code}).`, error: false };
    return null;
  }

  const SOURCE_LABELS = { microphone: 'Microphone', file: 'File', retry: 'Retry' };

  function buildHistoryItem(h) {
    const li = el('li', { class: 'history-item card', 'data-id': h.id, 'data-status': h.status || '' });
    const when = isNum(h.time_ms) ? new Date(h.time_ms) : null;
    const meta = el(
      'div',
      { class: 'history-meta' },
      el('time', { class: 'history-time', datetime: when ? when.toISOString() : null, text: when ? when.toLocaleString() : h.id }),
      el('span', { class: 'status-badge history-status', 'data-status': h.status || '', text: h.status || 'unknown' }),
    );
    if (h.source) meta.append(el('span', { text: SOURCE_LABELS[h.source] || h.source }));
    if (isNum(h.audio_seconds) && h.audio_seconds > 0) meta.append(el('span', { text: fmtDuration(h.audio_seconds) }));
    if (h.model) meta.append(el('span', { text: modelName(h.model) }));
    li.append(meta);

    const r = reasonOf(h);
    if (r) li.append(el('p', { class: `history-reason${r.error ? ' is-error' : ''}`, text: r.text }));

    li.append(
      el(
        'div',
        { class: 'history-texts' },
        el('div', {}, el('h3', { class: 'label-h', text: 'Refined' }), el('p', { class: 'history-refined', text: h.refined || '' })),
        el('div', {}, el('h3', { class: 'label-h', text: 'Raw' }), el('p', { class: 'history-raw', text: h.raw || '' })),
      ),
    );

    if (h.has_audio) {
      li.append(el('audio', { controls: true, preload: 'none', src: historyPath(h.id, 'audio'), 'aria-label': 'Recording' }));
    }

    const actions = el('div', { class: 'history-actions' });
    const btn = (cls, label, variant = 'secondary') => actions.append(el('button', { type: 'button', class: `${cls} small ${variant}`.trim(), text: label }));
    if (h.refined || h.raw) btn('copy', 'Copy');
    if (typeof h.raw === 'string' && h.raw.trim()) btn('rerefine', 'Re-refine');
    if (h.has_audio && (h.status === 'failed' || h.status === 'recorded')) btn('retry', 'Retry');
    btn('delete', 'Delete', 'danger');
    actions.append(el('span', { class: 'history-note', role: 'status', 'aria-live': 'polite' }));
    li.append(actions);
    li.dataset.sig = JSON.stringify(h);
    return li;
  }

  function renderHistory() {
    const list = $('#history-list');
    const existing = new Map($$('.history-item', list).map((li) => [li.dataset.id, li]));
    const shown = state.history.slice(0, state.historyShown);
    const items = shown.map((h) => {
      const old = existing.get(h.id);
      if (old && old.dataset.sig === JSON.stringify(h)) return old; // keeps a playing <audio>
      return buildHistoryItem(h);
    });
    list.replaceChildren(...items);
    $('#history-empty').hidden = state.history.length > 0;
    const more = $('#history-more');
    more.hidden = state.history.length <= shown.length;
    more.textContent = `Show older (${state.history.length - shown.length} more)`;
  }

  async function loadHistory() {
    try {
      const r = await get('/api/history');
      state.history = (r && Array.isArray(r.entries) ? r.entries : []).slice();
      // Newest first (the server sends them so; sort anyway for entries changed since).
      state.history.sort((a, b) => (b.time_ms || 0) - (a.time_ms || 0) || String(b.id).localeCompare(String(a.id)));
      $('#history-error').hidden = true;
      renderHistory();
    } catch (e) {
      const box = $('#history-error');
      box.textContent = `Could not load the history: ${e.message}`;
      box.hidden = false;
    }
  }
  const refreshHistory = debounce(loadHistory, 200);

  const findEntry = (id) => state.history.find((h) => h.id === id);

  function itemNote(li, text) {
    const n = li && $('.history-note', li);
    if (n) n.textContent = text;
  }

  let rerefineId = null;

  function openRerefine(id) {
    rerefineId = id;
    const s = state.settings || {};
    $('#rerefine-prompt').value = s.prompt || s.default_prompt || '';
    const sel = $('#rerefine-model');
    const llms = downloaded('llm');
    const opts = llms.map((m) => el('option', { value: m.id, text: m.name || m.id }));
    if (!opts.length) opts.push(el('option', { value: '', text: 'No language model downloaded' }));
    sel.replaceChildren(...opts);
    const entry = findEntry(id);
    const want = s.llm_model || (entry && entry.model);
    if (want && llms.some((m) => m.id === want)) sel.value = want;
    $('#rerefine-status').textContent = '';
    $('#rerefine-go').disabled = false;
    const dlg = $('#rerefine-dialog');
    if (typeof dlg.showModal === 'function') dlg.showModal();
    else dlg.setAttribute('open', '');
    $('#rerefine-prompt').focus();
  }

  function closeRerefine() {
    const dlg = $('#rerefine-dialog');
    if (typeof dlg.close === 'function') dlg.close();
    else dlg.removeAttribute('open');
  }

  async function runRerefine() {
    const id = rerefineId;
    if (!id) return;
    const body = {};
    const prompt = $('#rerefine-prompt').value;
    if (prompt.trim()) body.prompt = prompt;
    const model = $('#rerefine-model').value;
    if (model) body.model = model;
    const go = $('#rerefine-go');
    go.disabled = true;
    $('#rerefine-status').textContent = 'Refining…';
    try {
      const r = await post(historyPath(id, 'refine'), body);
      const entry = findEntry(id);
      if (entry && r) {
        entry.refined = r.refined;
        entry.fallback_reason = r.fallback_reason || null;
        entry.reason_code = r.reason_code || null;
        if (r.model) entry.model = r.model;
        entry.error = null;
      }
      renderHistory();
      closeRerefine();
      const li = $$('.history-item').find((x) => x.dataset.id === id);
      itemNote(li, r && r.reason_code && r.reason_code !== 'ok' ? 'Refined again (fallback: see the reason above).' : 'Refined again.');
    } catch (e) {
      $('#rerefine-status').textContent = e.message;
    } finally {
      go.disabled = false;
    }
  }

  function initHistory() {
    $('#history-list').addEventListener('click', async (e) => {
      const btn = e.target.closest('button');
      const li = btn && btn.closest('.history-item');
      if (!li) return;
      const id = li.dataset.id;
      const h = findEntry(id);
      if (btn.classList.contains('copy')) {
        copyWithFeedback(btn, (h && (h.refined || h.raw)) || '');
      } else if (btn.classList.contains('rerefine')) {
        openRerefine(id);
      } else if (btn.classList.contains('retry')) {
        btn.disabled = true;
        itemNote(li, 'Retrying…');
        try {
          applyDictation(await post(historyPath(id, 'retry'), {}));
          itemNote(li, 'Retrying — follow it on the Dictate tab.');
        } catch (err) {
          itemNote(li, err.message);
          btn.disabled = false;
        }
      } else if (btn.classList.contains('delete')) {
        if (!window.confirm('Delete this dictation and its recording?')) return;
        btn.disabled = true;
        try {
          await post(historyPath(id, 'delete'), {});
          state.history = state.history.filter((x) => x.id !== id);
          renderHistory();
        } catch (err) {
          itemNote(li, err.message);
          btn.disabled = false;
        }
      }
    });
    $('#history-more').addEventListener('click', () => {
      state.historyShown += HISTORY_PAGE;
      renderHistory();
    });
    $('#rerefine-go').addEventListener('click', runRerefine);
    $('#rerefine-cancel').addEventListener('click', closeRerefine);
    $('#rerefine-form').addEventListener('submit', (e) => {
      e.preventDefault();
      runRerefine();
    });
  }

  // ---------------------------------------------------------------- settings

  const LANGUAGES = [
    ['auto', 'Detect automatically'], ['en', 'English'], ['de', 'German'], ['fr', 'French'],
    ['es', 'Spanish'], ['it', 'Italian'], ['pt', 'Portuguese'], ['nl', 'Dutch'], ['pl', 'Polish'],
    ['sv', 'Swedish'], ['da', 'Danish'], ['no', 'Norwegian'], ['fi', 'Finnish'], ['cs', 'Czech'],
    ['ru', 'Russian'], ['uk', 'Ukrainian'], ['tr', 'Turkish'], ['el', 'Greek'], ['ar', 'Arabic'],
    ['he', 'Hebrew'], ['hi', 'Hindi'], ['ja', 'Japanese'], ['ko', 'Korean'], ['zh', 'Chinese'],
  ];

  const form = () => $('#settings-form');

  function setSettings(s) {
    if (!s || typeof s !== 'object') return;
    state.settings = s;
    if (!state.settingsDirty) renderSettings();
    renderStatus();
  }

  /* Fill a select, keeping `value` selectable even when it is not in the list. */
  function fillSelect(sel, options, value) {
    const opts = options.map(([v, label]) => el('option', { value: v, text: label }));
    if (value !== undefined && value !== null && !options.some(([v]) => v === String(value))) {
      opts.push(el('option', { value: String(value), text: `${value}` }));
    }
    sel.replaceChildren(...opts);
    sel.value = value === null || value === undefined ? '' : String(value);
  }

  function modelOptions(kind, current, noneLabel) {
    const opts = [['', noneLabel]];
    for (const m of downloaded(kind)) opts.push([m.id, m.name || m.id]);
    if (current && !opts.some(([v]) => v === current)) {
      const m = findModel(current);
      opts.push([current, `${m ? m.name || m.id : current} (not downloaded)`]);
    }
    return opts;
  }

  function renderSettingsModels() {
    const s = state.settings;
    if (!s) return;
    const f = form();
    const llm = state.settingsDirty ? f.elements.llm_model.value || null : s.llm_model;
    const wh = state.settingsDirty ? f.elements.whisper_model.value || null : s.whisper_model;
    // null means "automatic": the recommended / first downloaded model (in_use says which).
    const inUse = (state.models && state.models.in_use) || {};
    const auto = (id, none) => (id ? `Automatic — ${modelName(id)}` : `Automatic — ${none}`);
    fillSelect(f.elements.llm_model,
      modelOptions('llm', llm, auto(inUse.llm, 'none downloaded: basic cleanup only')), llm || '');
    fillSelect(f.elements.whisper_model,
      modelOptions('whisper', wh, auto(inUse.whisper, 'none downloaded')), wh || '');
  }

  function renderSettings() {
    const s = state.settings;
    if (!s) return;
    const f = form().elements;
    renderSettingsModels();
    f.provider.value = s.provider === 'openai' ? 'openai' : 'local';
    f.openai_base_url.value = s.openai_base_url || '';
    f.openai_model.value = s.openai_model || '';
    f.api_key.value = '';
    state.clearKey = false;
    f.api_key.placeholder = s.api_key_set ? '•••••••• (a key is set)' : 'No key set';
    $('#api-key-state').textContent = s.api_key_set ? 'A key is set; type a new one to replace it.' : 'No key set.';
    $('#api-key-clear').hidden = !s.api_key_set;
    f.prompt.value = s.prompt || '';
    f.prompt.placeholder = s.default_prompt || '';
    $('#prompt-state').textContent = s.prompt ? 'Custom instructions.' : 'Using the default instructions (shown greyed out). Type to replace them.';
    fillSelect(f.idle_timeout_s, $$('option', f.idle_timeout_s).map((o) => [o.value, o.textContent]).filter(([v]) => ['-1', '0', '120', '300', '600', '900', '3600'].includes(v)), isNum(s.idle_timeout_s) ? s.idle_timeout_s : 120);
    f.output.value = s.output || 'type';
    fillSelect(f.language, LANGUAGES, s.language || 'auto');
    f.whisper_context.value = s.whisper_context === false ? 'false' : 'true';
    f.vocabulary.value = s.vocabulary || '';
    $('#openai-fields').dataset.active = String(f.provider.value === 'openai');
  }

  function collectChanges() {
    const s = state.settings || {};
    const f = form().elements;
    const out = {};
    const orNull = (v) => (v === '' ? null : v);
    const cmp = (name, v) => {
      const old = s[name] === undefined ? null : s[name];
      if (v !== old) out[name] = v;
    };
    cmp('llm_model', orNull(f.llm_model.value));
    cmp('whisper_model', orNull(f.whisper_model.value));
    cmp('provider', f.provider.value);
    cmp('openai_base_url', orNull(f.openai_base_url.value.trim()));
    cmp('openai_model', orNull(f.openai_model.value.trim()));
    cmp('prompt', f.prompt.value.trim() === '' ? null : f.prompt.value);
    cmp('idle_timeout_s', Number(f.idle_timeout_s.value));
    cmp('output', f.output.value);
    cmp('language', f.language.value);
    cmp('whisper_context', f.whisper_context.value === 'true');
    cmp('vocabulary', orNull(f.vocabulary.value.trim()));
    if (f.api_key.value !== '') out.api_key = f.api_key.value;
    else if (state.clearKey) out.api_key = '';
    return out;
  }

  function settingsStatus(text, kind) {
    const st = $('#settings-status');
    st.textContent = text;
    st.dataset.kind = kind || '';
  }

  async function saveSettings(e) {
    e.preventDefault();
    const save = $('#settings-save');
    save.disabled = true;
    settingsStatus('Saving…', '');
    try {
      if (!state.settings) state.settings = await get('/api/settings');
      const res = await post('/api/settings', collectChanges());
      state.settingsDirty = false;
      if (res && typeof res === 'object') setSettings(res);
      else renderSettings();
      settingsStatus('Saved', 'ok');
      refreshModels();
      refreshStatus();
    } catch (err) {
      settingsStatus(err.message, 'error');
    } finally {
      save.disabled = false;
    }
  }

  function initSettings() {
    const f = form();
    const dirty = () => {
      state.settingsDirty = true;
      if ($('#settings-status').dataset.kind) settingsStatus('', '');
      $('#openai-fields').dataset.active = String(f.elements.provider.value === 'openai');
    };
    f.addEventListener('input', dirty);
    f.addEventListener('change', dirty);
    f.addEventListener('submit', saveSettings);
    $('#prompt-reset').addEventListener('click', () => {
      f.elements.prompt.value = '';
      $('#prompt-state').textContent = 'Default instructions will be used once you save.';
      dirty();
    });
    $('#api-key-clear').addEventListener('click', () => {
      f.elements.api_key.value = '';
      state.clearKey = true;
      $('#api-key-state').textContent = 'The key will be removed when you save.';
      dirty();
    });
  }

  // ---------------------------------------------------------------- events

  let source = null;
  let retryMs = 1000;

  function on(name, fn) {
    source.addEventListener(name, (e) => {
      let data;
      try {
        data = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      fn(data);
    });
  }

  function connectEvents() {
    if (source) source.close();
    source = new EventSource('/api/events');
    source.addEventListener('open', () => {
      state.connected = true;
      state.everConnected = true;
      retryMs = 1000;
      renderStatus();
    });
    source.addEventListener('error', () => {
      state.connected = false;
      renderStatus();
      // EventSource retries by itself, except after a refused response: then we do.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connectEvents, retryMs);
        retryMs = Math.min(retryMs * 2, 15000);
      }
    });
    on('hello', (d) => {
      state.connected = true;
      state.everConnected = true;
      applyStatus(d && d.status, true);
      // Catch up on whatever changed while we were not listening.
      loadModels();
      loadHistory();
    });
    on('dictation', applyDictation);
    on('refined', onRefinedDelta);
    on('warn', onWarn);
    on('model', onModelEvent);
    on('sidecar', (ev) => {
      if (state.status) {
        state.status.sidecar = Object.assign({}, state.status.sidecar, ev);
        if (!ev.model) state.status.sidecar.model_state = null;
      }
      renderStatus();
      refreshStatus();
    });
    on('settings', setSettings);
    on('history', () => refreshHistory());
  }

  // ---------------------------------------------------------------- start

  async function start() {
    initTabs();
    initDictate();
    initKeyboard();
    initModels();
    initHistory();
    initSettings();
    renderDictation();
    renderStatus();
    connectEvents();
    const [status] = await Promise.allSettled([get('/api/status'), loadModels(), loadHistory()]);
    if (status.status === 'fulfilled') applyStatus(status.value, !state.dictation);
    if (!state.settings) {
      try {
        setSettings(await get('/api/settings'));
      } catch (e) {
        /* shown when saving */
      }
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
