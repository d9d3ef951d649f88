// The router seen from MQTT.js 5 (the MQTT client inside Node-RED), MQTT v5.
//
//   node client.js <broker-url> <topic-root> <scenario>
//
// scenario: basic | plaintext | errors | burst. Prints one JSON line per
// finding on stdout: {"check": "<scenario>.<name>", "value": <what was seen>,
// "detail": "..."}, then {"done": "<scenario>"}. It asserts nothing: the C
// test (tests/integration/test_mqttjs.c) holds the expected values. Exit code
// 0 when the scenario ran (whatever it found), 2 when it could not run (no
// broker, bad arguments). Diagnostics go to stderr.
'use strict'

const crypto = require('crypto')
const mqtt = require('mqtt')

const [url, root, scenario] = process.argv.slice(2)
if (!url || !root || !scenario) {
  console.error('usage: node client.js <broker-url> <topic-root> <basic|plaintext|errors|burst>')
  process.exit(2)
}
const QUERY = `${root}/query`

function report (check, value, detail) {
  const line = { check: `${scenario}.${check}`, value: value === undefined ? '(absent)' : value }
  if (detail !== undefined) line.detail = detail
  process.stdout.write(JSON.stringify(line) + '\n')
}

function show (v) {
  if (v === undefined) return '(absent)'
  if (Buffer.isBuffer(v)) return `<Buffer ${v.toString('hex')}>`
  return JSON.stringify(v)
}

function parseJson (payload) {
  try {
    return JSON.parse(payload.toString('utf8'))
  } catch (e) {
    return undefined
  }
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

async function connect () {
  return mqtt.connectAsync(url, {
    protocolVersion: 5,
    clientId: `mqttjs-${scenario}-${process.pid}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10000
  })
}

// Collects every message on the subscribed topics; waitFor(pred, ms) resolves
// when pred() holds or the bound passes (the bound is generous: the checks
// count what arrived, never how fast).
function collector (client) {
  const msgs = []
  let wake = null
  client.on('message', (topic, payload, packet) => {
    msgs.push({ topic, payload, props: packet.properties || {} })
    if (wake) wake()
  })
  async function waitFor (pred, ms) {
    const end = Date.now() + ms
    while (!pred() && Date.now() < end) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.min(250, Math.max(1, end - Date.now())))
        wake = () => { clearTimeout(t); resolve() }
      })
      wake = null
    }
    return pred()
  }
  return { msgs, waitFor }
}

// Publishes and resolves with the PUBACK's outcome (an Error or null); MQTT.js
// reports a PUBACK reason code >= 0x80 as an error.
function publish (client, topic, payload, opts) {
  return new Promise((resolve) => client.publish(topic, payload, opts, (err) => resolve(err || null)))
}

function byCorr (msgs, corr) {
  return msgs.filter((m) => Buffer.isBuffer(m.props.correlationData) &&
                            m.props.correlationData.equals(corr))
}

// basic: 20 JSON queries, each with Response Topic, random Correlation Data
// and User Properties; every answer must echo them and say it is UTF-8 JSON.
async function basic (client) {
  const N = 20
  const responseTopic = 'plc/test/answers'
  await client.subscribeAsync(responseTopic, { qos: 1 })
  const { msgs, waitFor } = collector(client)
  const sent = []
  for (let i = 0; i < N; i++) {
    const q = {
      id: `mqttjs-basic-${i}`,
      prompt: `Part #4471 measured 25.0${i % 10} mm, spec 25.00 ± 0.05 mm. Pass or fail?`
    }
    const corr = crypto.randomBytes(16)
    const userProperties = { line: '3', cell: 'A', seq: String(i) }
    sent.push({ q, corr, userProperties })
    await publish(client, QUERY, JSON.stringify(q), {
      qos: 1,
      properties: { responseTopic, correlationData: corr, userProperties }
    })
  }
  await waitFor(() => sent.every((s) => byCorr(msgs, s.corr).length > 0), 30000)

  const counts = {
    answered: 0, correlation_echoed: 0, content_type_json: 0, payload_format_indicator: 0,
    user_properties_echoed: 0, json_same_id: 0, answer_ok: 0
  }
  const samples = {}
  const miss = (k, text) => { if (!(k in samples)) samples[k] = text }
  for (const s of sent) {
    // Found by the body's id, so a mangled Correlation Data is seen as such.
    const m = msgs.find((x) => isObject(parseJson(x.payload)) &&
                                parseJson(x.payload).id === s.q.id) ||
              byCorr(msgs, s.corr)[0]
    if (!m) { miss('answered', `no answer to ${s.q.id}`); continue }
    counts.answered++
    const p = m.props
    const body = parseJson(m.payload)
    if (Buffer.isBuffer(p.correlationData) && p.correlationData.equals(s.corr)) counts.correlation_echoed++
    else miss('correlation_echoed', `${s.q.id}: sent ${show(s.corr)}, got ${show(p.correlationData)}`)
    if (p.contentType === 'application/json') counts.content_type_json++
    else miss('content_type_json', `${s.q.id}: contentType ${show(p.contentType)}`)
    // MQTT.js decodes the Payload Format Indicator byte as a boolean: true for 1.
    if (p.payloadFormatIndicator === true) counts.payload_format_indicator++
    else miss('payload_format_indicator', `${s.q.id}: payloadFormatIndicator ${show(p.payloadFormatIndicator)}`)
    const up = p.userProperties || {}
    if (Object.entries(s.userProperties).every(([k, v]) => up[k] === v)) counts.user_properties_echoed++
    else miss('user_properties_echoed', `${s.q.id}: sent ${show(s.userProperties)}, got ${show(p.userProperties)}`)
    if (isObject(body) && body.id === s.q.id) counts.json_same_id++
    else miss('json_same_id', `${s.q.id}: body ${m.payload.toString('utf8').slice(0, 120)}`)
    if (isObject(body) && body.error === null && typeof body.answer === 'string' && body.answer) counts.answer_ok++
    else miss('answer_ok', `${s.q.id}: error ${show(isObject(body) ? body.error : undefined)}`)
  }
  for (const [k, v] of Object.entries(counts)) report(k, v, samples[k])
}

// One request with a Response Topic of its own; resolves with the answer
// found by Correlation Data (or undefined).
async function ask (client, c, responseTopic, tag, payload, extraProps) {
  const corr = Buffer.from(`${scenario}-${tag}`)
  await publish(client, QUERY, payload, {
    qos: 1,
    properties: Object.assign({ responseTopic, correlationData: corr }, extraProps || {})
  })
  await c.waitFor(() => byCorr(c.msgs, corr).length > 0, 30000)
  return byCorr(c.msgs, corr)[0]
}

function reportAnswer (tag, m) {
  report(`${tag}.answered`, !!m)
  if (!m) return undefined
  const body = parseJson(m.payload)
  // Shown as text when it is JSON, else as hex (a msgpack Result).
  const shown = body !== undefined ? m.payload.toString('utf8').slice(0, 160)
    : `hex ${m.payload.toString('hex').slice(0, 120)}`
  report(`${tag}.content_type`, m.props.contentType, `payload ${m.payload.length} bytes: ${shown}`)
  report(`${tag}.json_object`, isObject(body),
    isObject(body) ? undefined : `not a JSON object: ${m.payload.toString('hex').slice(0, 80)}`)
  return isObject(body) ? body : undefined
}

// plaintext: payloads that are not a JSON object (and carry no content type).
async function plaintext (client) {
  const rt = 'plc/test/plaintext'
  await client.subscribeAsync([rt, `${root}/result/keep-me-7`], { qos: 1 })
  const c = collector(client)

  let m = await ask(client, c, rt, 'text', 'Convert 150 psi to bar.')
  let b = reportAnswer('text', m)
  report('text.answer', !!(b && b.error === null && typeof b.answer === 'string' && b.answer.length > 0),
    b ? `answer ${show(b.answer)}, error ${show(b.error)}` : undefined)

  for (const [tag, payload] of [['empty', ''], ['array', '[1,2]']]) {
    m = await ask(client, c, rt, tag, payload)
    b = reportAnswer(tag, m)
    report(`${tag}.error`, !!(b && isObject(b.error) && typeof b.error.code === 'string'),
      b ? `error ${show(b.error)}` : undefined)
  }

  m = await ask(client, c, rt, 'truncated', '{"id":"keep-me-7", "prompt": "x"')
  b = reportAnswer('truncated', m)
  report('truncated.error', !!(b && isObject(b.error) && typeof b.error.code === 'string'),
    b ? `error ${show(b.error)}` : undefined)
  report('truncated.id', b ? b.id : undefined)
  await c.waitFor(() => c.msgs.some((x) => x.topic === `${root}/result/keep-me-7`), 5000)
  report('truncated.result_topic', c.msgs.some((x) => x.topic === `${root}/result/keep-me-7`),
    `published on ${root}/result/keep-me-7`)
}

// errors: in an error Result the fields that do not apply are null.
async function errors (client) {
  const rt = 'plc/test/errors'
  await client.subscribeAsync(rt, { qos: 1 })
  const c = collector(client)
  const cases = [
    ['max_tokens', '{"id":"e1","prompt":"hi","max_tokens":-5}'],
    ['policy', '{"id":"e2","prompt":"hi","policy":"whenever"}']
  ]
  for (const [tag, payload] of cases) {
    const m = await ask(client, c, rt, tag, payload)
    const b = reportAnswer(tag, m)
    report(`${tag}.error`, !!(b && isObject(b.error) && typeof b.error.code === 'string'),
      b ? `error ${show(b.error)}` : undefined)
    report(`${tag}.id`, b ? b.id : undefined)
    for (const f of ['tier', 'tier_index', 'threshold', 'confidence', 'attempts'])
      report(`${tag}.${f}`, b ? b[f] : undefined)
  }
}

// burst: 1,000 distinct queries as fast as MQTT.js sends them, QoS 1.
async function burst (client) {
  const N = 1000
  const rt = 'plc/test/burst'
  await client.subscribeAsync(rt, { qos: 1 })
  const c = collector(client)
  const tag = crypto.randomBytes(4).toString('hex')
  const corrs = new Map() // corr hex -> index
  const t0 = Date.now()
  const acks = []
  for (let i = 0; i < N; i++) {
    const corr = Buffer.from(`${tag}-${i}`)
    corrs.set(corr.toString('hex'), i)
    const q = { id: `burst-${tag}-${i}`, prompt: `Part #4471 reading ${i}: within 25.00 ± 0.05 mm?` }
    acks.push(publish(client, QUERY, JSON.stringify(q), {
      qos: 1, properties: { responseTopic: rt, correlationData: corr }
    }))
  }
  const pubErrs = (await Promise.all(acks)).filter((e) => e)
  const tAcked = Date.now()
  const seen = new Map() // index -> answers
  let unknown = 0
  let scanned = 0
  const scan = () => {
    for (; scanned < c.msgs.length; scanned++) {
      const cd = c.msgs[scanned].props.correlationData
      const i = Buffer.isBuffer(cd) ? corrs.get(cd.toString('hex')) : undefined
      if (i === undefined) { unknown++; continue }
      if (!seen.has(i)) seen.set(i, [])
      seen.get(i).push(c.msgs[scanned])
    }
    return seen.size === N
  }
  await c.waitFor(scan, 120000)
  await c.waitFor(() => { scan(); return false }, 1000) // late duplicates
  scan()
  const tDone = Date.now()

  let ok = 0; let busy = 0; let errs = 0; let dups = 0
  const errCodes = {}
  for (const list of seen.values()) {
    dups += list.length - 1
    const b = parseJson(list[0].payload)
    const code = isObject(b) && isObject(b.error) ? b.error.code : (isObject(b) ? null : 'undecodable')
    if (code === null) ok++
    else if (code === 'busy') busy++
    else { errs++; errCodes[code] = (errCodes[code] || 0) + 1 }
  }
  const firstBusy = [...seen.values()].map((l) => parseJson(l[0].payload))
    .find((b) => isObject(b) && isObject(b.error) && b.error.code === 'busy')
  report('sent', N)
  report('puback_errors', pubErrs.length, pubErrs.length ? String(pubErrs[0]) : undefined)
  report('answered', seen.size)
  report('ok', ok)
  report('busy', busy, firstBusy ? firstBusy.error.message : undefined)
  report('errors', errs, errs ? JSON.stringify(errCodes) : undefined)
  report('lost', N - seen.size)
  report('duplicates', dups)
  report('unknown', unknown)
  console.error(`burst: ${N} published and acknowledged in ${tAcked - t0} ms, ` +
                `${seen.size} answered after ${tDone - t0} ms (information only)`)
}

const scenarios = { basic, plaintext, errors, burst }

async function main () {
  if (!scenarios[scenario]) {
    console.error(`unknown scenario ${scenario}`)
    process.exit(2)
  }
  let client
  try {
    client = await connect()
  } catch (e) {
    console.error(`cannot connect to ${url}: ${e.message}`)
    process.exit(2)
  }
  client.on('error', (e) => console.error(`mqtt error: ${e.message}`))
  await scenarios[scenario](client)
  process.stdout.write(JSON.stringify({ done: scenario }) + '\n')
  await client.endAsync()
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e))
  process.exit(2)
})
