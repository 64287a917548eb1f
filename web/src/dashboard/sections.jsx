// The dashboard's sections, each from the one $fls-dashboard answer (docs/kpis.md).
import {
  CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip,
} from 'chart.js';
import { useEffect, useRef, useState } from 'preact/hooks';

import { getJson, query } from '../common/api.js';
import { date, decimal, integer, percent, quarter, signedPercent } from '../common/format.js';

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Tooltip, Legend);

// A measure's name in the page's language: its own, or its kind's; the server's title otherwise.
export function measureTitle(t, m) {
  for (const key of [`measure.${m.id}`, `kind.${m.kind}`]) {
    const text = t(key);
    if (text !== key) return text;
  }
  return m.title;
}

// A score as its measure reads: a percentage, days, or a ratio.
export function formatScore(t, lang, m, score) {
  if (score === null || score === undefined) return t('kpis.noValue');
  if (m.scoring === 'proportion') return percent(lang, score);
  if (m.scoring === 'ratio') return `× ${decimal(lang, score, 2)}`;
  return t('kpis.days', { n: decimal(lang, score, 1) });
}

function counts(t, lang, m, v) {
  if (!v) return '';
  if (m.scoring === 'continuous-variable') return t(v.observations === 1 ? 'kpis.case' : 'kpis.cases', { n: integer(lang, v.observations) });
  if (m.scoring === 'ratio') return `${integer(lang, v.numerator)} / ${integer(lang, v.denominator)}`;
  const text = `${integer(lang, v.numerator)} / ${integer(lang, v.denominator - v.exclusion)}`;
  return v.exclusion ? `${text} (${t('kpis.excluded', { n: integer(lang, v.exclusion) })})` : text;
}

function Band({ t, band }) {
  if (!band) return null;
  return <span class={`band band-${band}`}>{t(`band.${band}`)}</span>;
}

function Level({ t, level }) {
  const code = level || 'none';
  return <span class={`level level-${code}`} data-level={code}>{t(`level.${code}`)}</span>;
}

// Wide tables scroll inside a focusable region (keyboard users can scroll them too).
function Scroll({ label, children }) {
  return <div class="scroll" tabIndex={0} role="region" aria-label={label}>{children}</div>;
}

export function KpiTable({ t, lang, data }) {
  const values = data.overall.values;
  return (
    <section aria-labelledby="kpis-title">
      <h2 id="kpis-title">{t('kpis.title')}</h2>
      <Scroll label={t('kpis.title')}>
        <table class="kpis" data-testid="kpis">
          <caption>{t('kpis.caption', { framework: data.frameworkTitle, start: date(lang, data.period.start), end: date(lang, data.period.end) })}</caption>
          <thead>
            <tr>
              <th scope="col">{t('kpis.number')}</th>
              <th scope="col">{t('kpis.indicator')}</th>
              <th scope="col" class="num">{t('kpis.value')}</th>
              <th scope="col" class="num">{t('kpis.counts')}</th>
              <th scope="col">{t('kpis.band')}</th>
            </tr>
          </thead>
          <tbody>
            {data.measures.map((m) => {
              const v = values[m.id];
              return (
                <tr key={m.id} data-testid={`kpi-${m.id}`}>
                  <td>{m.framework === data.framework && m.number ? m.number : ''}</td>
                  <th scope="row" title={m.description}>{measureTitle(t, m)}</th>
                  <td class="num" data-testid={`score-${m.id}`} data-score={v?.score ?? ''}>{formatScore(t, lang, m, v?.score)}</td>
                  <td class="num">{counts(t, lang, m, v)}</td>
                  <td><Band t={t} band={v?.band} /></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </Scroll>
    </section>
  );
}

export function Trend({ t, lang, data }) {
  const [id, setId] = useState(() => (data.measures.find((m) => m.kind === 'assessment') || data.measures[0]).id);
  const canvas = useRef(null);
  const m = data.measures.find((x) => x.id === id) || data.measures[0];
  const points = data.quarters.map((q) => ({ label: quarter(lang, q.start), score: q.values[m.id]?.score ?? null }));
  const scale = m.scoring === 'proportion' ? 100 : 1;
  useEffect(() => {
    if (!canvas.current) return undefined;
    const chart = new Chart(canvas.current, {
      type: 'line',
      data: {
        labels: points.map((p) => p.label),
        datasets: [{
          label: measureTitle(t, m),
          data: points.map((p) => (p.score === null ? null : p.score * scale)),
          borderColor: '#1d4f91',
          backgroundColor: '#1d4f91',
          spanGaps: false,
        }],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, suggestedMax: m.scoring === 'proportion' ? 100 : undefined } },
        plugins: { legend: { display: false } },
      },
    });
    return () => chart.destroy();
  }, [id, lang, data]);
  return (
    <section aria-labelledby="trend-title">
      <h2 id="trend-title">{t('trend.title')}</h2>
      <div class="field">
        <label for="trend-measure">{t('kpis.indicator')}</label>
        <select id="trend-measure" value={id} onChange={(e) => setId(e.currentTarget.value)}>
          {data.measures.map((x) => <option key={x.id} value={x.id}>{measureTitle(t, x)}</option>)}
        </select>
      </div>
      <div class="chart">
        <canvas ref={canvas} role="img" aria-label={t('trend.of', { title: measureTitle(t, m) })} />
      </div>
      <details>
        <summary>{t('trend.table')}</summary>
        <table data-testid="trend-table">
          <thead><tr><th scope="col">{t('trend.quarter')}</th><th scope="col" class="num">{t('kpis.value')}</th></tr></thead>
          <tbody>
            {points.map((p, i) => (
              <tr key={i}><th scope="row">{p.label}</th><td class="num">{formatScore(t, lang, m, p.score)}</td></tr>
            ))}
          </tbody>
        </table>
      </details>
    </section>
  );
}

function GoalCard({ t, title, text, target, value, progress, testid }) {
  const pct = progress === null ? null : Math.round(Math.max(0, Math.min(1, progress)) * 100);
  return (
    <div class="goal" data-testid={testid}>
      <h3>{title}</h3>
      <p class="goal-value">{value}</p>
      <p>{text}</p>
      <p class="hint">{target}</p>
      {pct !== null && (
        <div class="progress-row">
          <progress max="100" value={pct} aria-label={`${title} — ${t('goals.progress')}`} />
          <span>{pct} %</span>
        </div>
      )}
    </div>
  );
}

export function Goals({ t, lang, data }) {
  const g = data.goals;
  const sites = g.activeSites;
  const hv = g.hipVertebral;
  return (
    <section aria-labelledby="goals-title">
      <h2 id="goals-title">{t('goals.title')}</h2>
      <p>{t('goals.baseline', { start: date(lang, g.baseline.start), end: date(lang, g.baseline.end) })}</p>
      <div class="goals">
        <GoalCard t={t} testid="goal-active-sites" title={t('goals.activeSites')}
          value={sites.ratio === null ? t('goals.noBaseline') : `× ${decimal(lang, sites.ratio, 2)}`}
          text={t('goals.activeSitesText', { period: integer(lang, sites.period), baseline: integer(lang, sites.baseline) })}
          target={t('goals.activeSitesTarget', { target: decimal(lang, sites.target, 2) })}
          progress={sites.ratio === null ? null : (sites.ratio - 1) / (sites.target - 1)} />
        <GoalCard t={t} testid="goal-hip-vertebral" title={t('goals.hipVertebral')}
          value={hv.change === null ? t('goals.noBaseline') : signedPercent(lang, hv.change)}
          text={t('goals.hipVertebralText', { period: integer(lang, hv.period), baseline: integer(lang, hv.baseline) })}
          target={t('goals.hipVertebralTarget', { target: signedPercent(lang, hv.target, 0) })}
          progress={hv.change === null ? null : hv.change / hv.target} />
      </div>
    </section>
  );
}

export function Sites({ t, lang, data }) {
  const shown = data.measures.filter((m) => m.framework === data.framework);
  return (
    <section aria-labelledby="sites-title">
      <h2 id="sites-title">{t('sites.title')}</h2>
      {data.sites.length === 0 ? <p>{t('sites.none')}</p> : (
        <Scroll label={t('sites.title')}>
          <table class="sites" data-testid="sites">
            <thead>
              <tr>
                <th scope="col">{t('sites.site')}</th>
                <th scope="col" class="num">{t('sites.caseload')}</th>
                {shown.map((m) => <th key={m.id} scope="col" class="num" title={measureTitle(t, m)}>{m.number}</th>)}
                <th scope="col" class="num">{t('sites.hipVertebral')}</th>
                <th scope="col">{t('sites.level')}</th>
              </tr>
            </thead>
            <tbody>
              {data.sites.map((s) => {
                const hv = s.values['ctf-hip-vertebral-change'];
                return (
                  <tr key={s.id} data-testid={`site-${s.id}`}>
                    <th scope="row">{s.name}</th>
                    <td class="num">{integer(lang, s.expectedCaseloadPerYear)}</td>
                    {shown.map((m) => {
                      const v = s.values[m.id];
                      return (
                        <td key={m.id} class={`num ${v?.band ? `cell-${v.band}` : ''}`} data-measure={m.id} data-score={v?.score ?? ''}>
                          {v?.score === null || v?.score === undefined ? '—' : formatScore(t, lang, m, v.score)}
                        </td>
                      );
                    })}
                    <td class="num">{hv?.score === null || hv?.score === undefined ? '—' : signedPercent(lang, hv.score - 1)}</td>
                    <td><Level t={t} level={s.bpf.overall} /></td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </Scroll>
      )}
    </section>
  );
}

export function Bpf({ t, lang, data }) {
  const standards = data.bpfStandards.standards;
  const levels = data.overall.bpf.levels;
  const fmt = (s, v) => (s.lowerIsBetter ? t('kpis.days', { n: decimal(lang, v, 1) }) : percent(lang, v, 0));
  return (
    <section aria-labelledby="bpf-title">
      <h2 id="bpf-title">{t('bpf.title')}</h2>
      <p data-testid="bpf-overall">{t('bpf.overall', { level: t(`level.${data.overall.bpf.overall || 'none'}`) })}</p>
      <Scroll label={t('bpf.title')}>
        <table data-testid="bpf">
          <thead>
            <tr>
              <th scope="col">{t('bpf.standard')}</th>
              <th scope="col" class="num">{t('bpf.score')}</th>
              <th scope="col" class="num">{t('bpf.thresholds')}</th>
              <th scope="col">{t('bpf.level')}</th>
            </tr>
          </thead>
          <tbody>
            {standards.map((s) => (
              <tr key={s.standard}>
                <th scope="row" title={s.source}>{s.standard}. {t(`bpf.s${s.standard}`) === `bpf.s${s.standard}` ? s.title : t(`bpf.s${s.standard}`)}</th>
                <td class="num">{s.score === null ? '—' : fmt(s, s.score)}</td>
                <td class="num">{`${fmt(s, s.bronze)} / ${fmt(s, s.silver)} / ${fmt(s, s.gold)}`}</td>
                <td><Level t={t} level={levels[String(s.standard)]} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      </Scroll>
      <p class="hint">{t('bpf.rule')}</p>
    </section>
  );
}

function PointsTable({ t, lang, projection, testid }) {
  return (
    <table data-testid={testid}>
      <thead>
        <tr>
          <th scope="col"><span class="visually-hidden">{t('projection.years', { n: '' })}</span></th>
          {projection.points.map((p) => <th key={p.years} scope="col" class="num">{t('projection.years', { n: p.years })}</th>)}
        </tr>
      </thead>
      <tbody>
        <tr>
          <th scope="row">{t('projection.expected')}</th>
          {projection.points.map((p) => <td key={p.years} class="num">{decimal(lang, p.expectedRefractures, 1)}</td>)}
        </tr>
        <tr>
          <th scope="row">{t('projection.avoided')}</th>
          {projection.points.map((p) => <td key={p.years} class="num strong" data-avoided={p.avoided}>{decimal(lang, p.avoided, 1)}</td>)}
        </tr>
        <tr>
          <th scope="row">{t('projection.beyond')}</th>
          {projection.points.map((p) => <td key={p.years} class="num">{decimal(lang, p.avoidedBeyondUsualCare, 1)}</td>)}
        </tr>
      </tbody>
    </table>
  );
}

function Missing({ t, projection }) {
  if (!projection.missing.length) return null;
  return <p class="notice" role="note">{t('projection.missing', { what: projection.missing.map((m) => t(`missing.${m}`)).join(', ') })}</p>;
}

const RATES = ['capture', 'treatment', 'adherence'];

export function Projection({ t, lang, data, filters }) {
  const measured = data.projection.measured;
  const start = () => Object.fromEntries(RATES.map((r) => [r, measured[r] === null ? 50 : Math.round(measured[r] * 100)]));
  const [rates, setRates] = useState(start);
  const [touched, setTouched] = useState(false);
  const [changed, setChanged] = useState([]);  // the rates the user moved: only those are sent
  const [result, setResult] = useState(null);
  const reset = () => { setRates(start()); setTouched(false); setChanged([]); setResult(null); };
  useEffect(reset, [data]);
  useEffect(() => {
    if (!touched) return undefined;
    const controller = new AbortController();
    const timer = setTimeout(() => {
      const q = { periodStart: filters.periodStart, periodEnd: filters.periodEnd, subject: filters.subject };
      for (const r of changed) q[r] = rates[r] / 100;
      getJson(`/$fls-projection?${query(q)}`, { signal: controller.signal })
        .then((d) => setResult(d.projection))
        .catch(() => setResult(null));
    }, 250);
    return () => { clearTimeout(timer); controller.abort(); };
  }, [rates, touched]);
  const method = data.projection.method;
  return (
    <section aria-labelledby="projection-title" data-testid="projection-section">
      <h2 id="projection-title">{t('projection.title')}</h2>
      <p>{t('projection.intro')} {t('projection.patients', { n: decimal(lang, data.projection.patientsPerYear, 1) })}</p>
      <Missing t={t} projection={data.projection} />
      {data.projection.points.length > 0 && <PointsTable t={t} lang={lang} projection={data.projection} testid="projection" />}
      <h3>{t('projection.whatIf')}</h3>
      <div class="what-if">
        {RATES.map((r) => (
          <div class="field range" key={r}>
            <label for={`what-if-${r}`}>{t(`projection.${r}`)}</label>
            <input id={`what-if-${r}`} type="range" min="0" max="100" step="1" value={rates[r]}
              disabled={r === 'capture' && measured.capture === null}
              aria-valuetext={`${rates[r]} %`}
              onInput={(e) => {
                setRates({ ...rates, [r]: Number(e.currentTarget.value) });
                if (!changed.includes(r)) setChanged([...changed, r]);
                setTouched(true);
              }} />
            <output for={`what-if-${r}`}>{rates[r]} %</output>
            <span class="hint">
              {measured[r] === null ? t('projection.unknown') : t('projection.measured', { value: percent(lang, measured[r]) })}
            </span>
          </div>
        ))}
        <button type="button" onClick={reset}>{t('projection.reset')}</button>
      </div>
      {result && (
        <div data-testid="what-if-result" aria-live="polite">
          <h4>{t('projection.whatIfResult')}</h4>
          <Missing t={t} projection={result} />
          {result.points.length > 0 && <PointsTable t={t} lang={lang} projection={result} testid="what-if-points" />}
        </div>
      )}
      <details>
        <summary>{t('projection.method')}</summary>
        <p>{t('projection.risk', { value: percent(lang, method.annualRefractureRisk), source: method.annualRefractureRiskSource })}</p>
        <p>{t('projection.reduction', { value: percent(lang, method.treatmentRiskReduction, 0), source: method.treatmentRiskReductionSource })}</p>
        <p>{t('projection.wu', {
          bmdFls: percent(lang, method.withFls.bmdTesting), bmdUsual: percent(lang, method.usualCare.bmdTesting),
          txFls: percent(lang, method.withFls.treatment), txUsual: percent(lang, method.usualCare.treatment),
          adhFls: percent(lang, method.withFls.adherence), adhUsual: percent(lang, method.usualCare.adherence),
          reFls: percent(lang, method.withFls.refracture), reUsual: percent(lang, method.usualCare.refracture),
        })}</p>
      </details>
    </section>
  );
}
