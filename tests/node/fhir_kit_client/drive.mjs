// Drives a running phivault server with the npm `fhir-kit-client` library, a
// FHIR client nobody here wrote, for tests/fhir_kit_client_test.cc: create,
// read, search paged to the end through the Bundle links, _include,
// a transaction with urn:uuid references, and instance and type history.
//
// Usage: PHIVAULT_TOKEN=... node drive.mjs BASE_URL
//   BASE_URL is the server's FHIR base, e.g. http://127.0.0.1:8080/fhir.
//
// The vault must be fresh (nothing but what this script writes), because the
// type history is checked to hold exactly the versions written here.
// Exits 0 when every check holds; otherwise prints the first mismatch, and
// for HTTP failures the status and OperationOutcome, and exits 1.
import { randomUUID } from 'node:crypto';
import { Client } from 'fhir-kit-client';

const [baseUrl] = process.argv.slice(2);
const token = process.env.PHIVAULT_TOKEN;
if (!baseUrl || !token) {
  console.error('usage: PHIVAULT_TOKEN=... node drive.mjs BASE_URL');
  process.exit(2);
}

const client = new Client({ baseUrl, bearerToken: token });

// Small enough that every listing spans several pages.
const PAGE = 4;
const PATIENTS = 11;
const OBS_PER_PATIENT = 2;
// Unique per run, so the searches below can only match what this run wrote.
const RUN = randomUUID();
const ID_SYSTEM = `urn:phivault-test:fhir-kit:${RUN}`;
const CODE_SYSTEM = `urn:phivault-test:fhir-kit-code:${RUN}`;

let currentStep = 'start';
class Mismatch extends Error {}
function check(cond, message) {
  if (!cond) throw new Mismatch(message);
}
// JSON with object keys sorted: member order carries no meaning in FHIR JSON.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
function checkEq(actual, expected, what) {
  const a = canonical(actual);
  const e = canonical(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}
function step(name) {
  currentStep = name;
  console.log(`fhir-kit: ${name}`);
}

const entries = (bundle) => bundle.entry ?? [];
const linkUrl = (bundle, relation) => bundle.link?.find((l) => l.relation === relation)?.url;

// Follows the server's `next` links with client.nextPage until there are
// none, checking each page is a proper Bundle of at most PAGE matches whose
// links point back at this server. Returns the pages.
async function allPages(first, type, what) {
  const pages = [first];
  for (let page = first; ; ) {
    checkEq(page.resourceType, 'Bundle', `${what} page ${pages.length} resourceType`);
    checkEq(page.type, type, `${what} page ${pages.length} type`);
    for (const l of page.link ?? []) {
      check(l.url.startsWith(`${baseUrl}/`), `${what}: link ${l.relation} ${l.url} does not point under ${baseUrl}`);
    }
    const matches = entries(page).filter((e) => type !== 'searchset' || e.search?.mode === 'match');
    check(matches.length <= PAGE, `${what} page ${pages.length}: ${matches.length} entries with _count=${PAGE}`);
    const hasNext = linkUrl(page, 'next') !== undefined;
    const next = await client.nextPage({ bundle: page });
    if (!hasNext) {
      check(next === undefined, `${what}: nextPage returned a page without a next link`);
      break;
    }
    check(next !== undefined, `${what}: next link present but nextPage returned nothing`);
    check(pages.length < 100, `${what}: more than 100 pages, the next links loop`);
    pages.push(next);
    page = next;
  }
  return pages;
}

// Walks back with client.prevPage from every page but the first (which must
// have no previous link): each must lead to the same matches as the page before.
async function checkPreviousLinks(pages, what) {
  check(linkUrl(pages[0], 'previous') === undefined, `${what}: the first page has a previous link`);
  const matchIds = (pg) => entries(pg).filter((e) => e.search?.mode === 'match').map((e) => e.resource.id);
  for (let n = 1; n < pages.length; ++n) {
    const back = await client.prevPage({ bundle: pages[n] });
    check(back !== undefined, `${what}: page ${n + 1} has no previous link`);
    checkEq(matchIds(back), matchIds(pages[n - 1]), `${what}: prevPage from page ${n + 1}`);
  }
}

// Every key must be seen exactly once and nothing else.
function checkExactlyOnce(seen, expected, what) {
  const counts = new Map();
  for (const k of seen) counts.set(k, (counts.get(k) ?? 0) + 1);
  for (const [k, n] of counts) {
    check(expected.has(k), `${what}: ${k} was returned but not expected`);
    check(n === 1, `${what}: ${k} was returned ${n} times`);
  }
  for (const k of expected) check(counts.has(k), `${what}: ${k} was never returned`);
}

function patientBody(i) {
  return {
    resourceType: 'Patient',
    identifier: [{ system: ID_SYSTEM, value: `p${i}` }],
    name: [{ family: `Kit${i}`, given: ['Fhir', `N${i}`] }],
    gender: i % 2 ? 'female' : 'male',
    birthDate: `19${String(50 + i).padStart(2, '0')}-0${(i % 9) + 1}-1${i % 10}`,
  };
}

function observationBody(patientId, i, j) {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: CODE_SYSTEM, code: 'heart-rate', display: 'Heart rate' }] },
    subject: { reference: `Patient/${patientId}` },
    valueQuantity: { value: 60 + i * 3 + j, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

// The fields a client sent must come back unchanged; the server adds id and meta.
function checkSameContent(actual, sent, what) {
  for (const [k, v] of Object.entries(sent)) checkEq(actual[k], v, `${what} ${k}`);
}

async function main() {
  step('capability statement');
  const cs = await client.capabilityStatement();
  checkEq(cs.resourceType, 'CapabilityStatement', 'metadata resourceType');
  checkEq(cs.fhirVersion?.startsWith('4.0'), true, `metadata fhirVersion ${cs.fhirVersion}`);

  step(`create ${PATIENTS} Patients and ${PATIENTS * OBS_PER_PATIENT} Observations`);
  const patients = []; // { id, body }
  for (let i = 0; i < PATIENTS; ++i) {
    const body = patientBody(i);
    const created = await client.create({ resourceType: 'Patient', body });
    check(typeof created.id === 'string' && created.id.length > 0, `create Patient ${i}: no id in the response`);
    checkEq(created.meta?.versionId, '1', `create Patient ${i} meta.versionId`);
    checkSameContent(created, body, `create Patient ${i}`);
    const res = Client.httpFor(created).response;
    checkEq(res.status, 201, `create Patient ${i} status`);
    check(
      res.headers.get('location')?.startsWith(`${baseUrl}/Patient/${created.id}`),
      `create Patient ${i}: Location ${res.headers.get('location')} is not ${baseUrl}/Patient/${created.id}/...`,
    );
    patients.push({ id: created.id, body });
  }
  checkEq(new Set(patients.map((p) => p.id)).size, PATIENTS, 'distinct Patient ids');
  const observations = []; // { id, body, patient }
  for (const [i, p] of patients.entries()) {
    for (let j = 0; j < OBS_PER_PATIENT; ++j) {
      const body = observationBody(p.id, i, j);
      const created = await client.create({ resourceType: 'Observation', body });
      check(typeof created.id === 'string' && created.id.length > 0, `create Observation ${i}.${j}: no id`);
      checkSameContent(created, body, `create Observation ${i}.${j}`);
      observations.push({ id: created.id, body, patient: p.id });
    }
  }

  step('read every resource back');
  for (const p of patients) {
    const r = await client.read({ resourceType: 'Patient', id: p.id });
    checkEq(r.resourceType, 'Patient', `read Patient/${p.id} resourceType`);
    checkEq(r.id, p.id, `read Patient/${p.id} id`);
    checkEq(r.meta?.versionId, '1', `read Patient/${p.id} meta.versionId`);
    checkSameContent(r, p.body, `read Patient/${p.id}`);
  }
  for (const o of observations) {
    const r = await client.read({ resourceType: 'Observation', id: o.id });
    checkEq(r.id, o.id, `read Observation/${o.id} id`);
    checkSameContent(r, o.body, `read Observation/${o.id}`);
  }
  let notFound;
  try {
    await client.read({ resourceType: 'Patient', id: `missing-${RUN}` });
  } catch (e) {
    notFound = e;
  }
  checkEq(notFound?.response?.status, 404, 'read of a missing Patient status');
  checkEq(notFound?.response?.data?.resourceType, 'OperationOutcome', 'read of a missing Patient body');

  step(`search Patients by identifier, ${PAGE} a page, to the end with nextPage`);
  const first = await client.search({
    resourceType: 'Patient',
    searchParams: { identifier: `${ID_SYSTEM}|`, _count: PAGE, _total: 'accurate' },
  });
  const pages = await allPages(first, 'searchset', 'Patient search');
  checkEq(pages.length, Math.ceil(PATIENTS / PAGE), 'Patient search page count');
  checkEq(first.total, PATIENTS, 'Patient search total with _total=accurate');
  const seen = pages.flatMap((pg) => entries(pg).map((e) => e.resource.id));
  checkExactlyOnce(seen, new Set(patients.map((p) => p.id)), 'Patient search over all pages');
  for (const pg of pages) {
    for (const e of entries(pg)) {
      checkEq(e.search?.mode, 'match', `Patient search entry ${e.resource.id} search.mode`);
      checkEq(e.fullUrl, `${baseUrl}/Patient/${e.resource.id}`, `Patient search entry fullUrl`);
      const sent = patients.find((p) => p.id === e.resource.id);
      checkSameContent(e.resource, sent.body, `Patient search entry ${e.resource.id}`);
    }
  }
  await checkPreviousLinks(pages, 'Patient search');
  // The same search as a form POST to _search gives the same first page.
  const posted = await client.search({
    resourceType: 'Patient',
    searchParams: { identifier: `${ID_SYSTEM}|`, _count: PAGE },
    options: { postSearch: true },
  });
  checkEq(
    entries(posted).map((e) => e.resource.id),
    entries(first).map((e) => e.resource.id),
    'POST Patient/_search first page',
  );
  // One identifier value narrows the search to one Patient.
  const one = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${ID_SYSTEM}|p3` } });
  checkEq(entries(one).map((e) => e.resource.id), [patients[3].id], 'Patient search identifier=p3');

  step('search Observations with _include=Observation:subject');
  const obsFirst = await client.search({
    resourceType: 'Observation',
    searchParams: { code: `${CODE_SYSTEM}|heart-rate`, _include: 'Observation:subject', _count: PAGE },
  });
  const obsPages = await allPages(obsFirst, 'searchset', 'Observation _include search');
  checkEq(obsPages.length, Math.ceil(observations.length / PAGE), 'Observation search page count');
  const matched = [];
  for (const [n, pg] of obsPages.entries()) {
    const pageMatches = entries(pg).filter((e) => e.search?.mode === 'match');
    const pageIncludes = entries(pg).filter((e) => e.search?.mode === 'include');
    checkEq(
      entries(pg).length,
      pageMatches.length + pageIncludes.length,
      `Observation search page ${n + 1}: entries without search.mode match/include`,
    );
    for (const e of pageMatches) {
      checkEq(e.resource.resourceType, 'Observation', `Observation search page ${n + 1} match type`);
      matched.push(e.resource.id);
    }
    // Each page carries exactly the subjects of its own matches, once each.
    const wanted = new Set(pageMatches.map((e) => e.resource.subject.reference));
    const included = pageIncludes.map((e) => `${e.resource.resourceType}/${e.resource.id}`);
    checkExactlyOnce(included, wanted, `Observation search page ${n + 1} included subjects`);
    for (const e of pageIncludes) {
      const sent = patients.find((p) => p.id === e.resource.id);
      checkSameContent(e.resource, sent.body, `included Patient/${e.resource.id}`);
      checkEq(e.fullUrl, `${baseUrl}/Patient/${e.resource.id}`, 'included entry fullUrl');
    }
  }
  checkExactlyOnce(matched, new Set(observations.map((o) => o.id)), 'Observation search over all pages');
  await checkPreviousLinks(obsPages, 'Observation _include search');

  step('transaction with urn:uuid references');
  const patientUrn = `urn:uuid:${randomUUID()}`;
  const obsUrn = `urn:uuid:${randomUUID()}`;
  const txPatient = {
    resourceType: 'Patient',
    identifier: [{ system: ID_SYSTEM, value: 'tx' }],
    name: [{ family: 'KitTransaction', given: ['Fhir'] }],
  };
  const txObservation = {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: CODE_SYSTEM, code: 'heart-rate' }] },
    subject: { reference: patientUrn },
    valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  };
  // The Observation comes first, so the server must resolve a forward reference.
  const tx = await client.transaction({
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: obsUrn, resource: txObservation, request: { method: 'POST', url: 'Observation' } },
        { fullUrl: patientUrn, resource: txPatient, request: { method: 'POST', url: 'Patient' } },
      ],
    },
  });
  checkEq(tx.resourceType, 'Bundle', 'transaction response resourceType');
  checkEq(tx.type, 'transaction-response', 'transaction response type');
  checkEq(entries(tx).length, 2, 'transaction response entries');
  const locations = entries(tx).map((e, n) => {
    check(e.response?.status?.startsWith('201'), `transaction entry ${n} status ${e.response?.status}`);
    const m = /^(?:.*\/)?(Observation|Patient)\/([^/]+)\/_history\/1$/.exec(e.response?.location ?? '');
    check(m, `transaction entry ${n}: location ${e.response?.location} is not TYPE/ID/_history/1`);
    return { type: m[1], id: m[2] };
  });
  checkEq(locations.map((l) => l.type), ['Observation', 'Patient'], 'transaction response entries in request order');
  const [txObs, txPat] = locations;
  const readObs = await client.read({ resourceType: 'Observation', id: txObs.id });
  checkEq(readObs.subject?.reference, `Patient/${txPat.id}`, 'transaction Observation.subject rewritten');
  const readPat = await client.read({ resourceType: 'Patient', id: txPat.id });
  checkSameContent(readPat, txPatient, 'transaction Patient');
  // The rewritten reference is searchable like any other.
  const bySubject = await client.search({
    resourceType: 'Observation',
    searchParams: { subject: `Patient/${txPat.id}` },
  });
  checkEq(entries(bySubject).map((e) => e.resource.id), [txObs.id], 'Observation?subject=<transaction Patient>');
  // A transaction is all or nothing: the second entry fails its version
  // check when it is committed, so the first entry's create is undone too.
  const stale = patients[2];
  let refused;
  try {
    await client.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: { ...txPatient, identifier: [{ system: ID_SYSTEM, value: 'never' }] },
            request: { method: 'POST', url: 'Patient' },
          },
          {
            resource: { ...stale.body, id: stale.id, gender: 'other' },
            request: { method: 'PUT', url: `Patient/${stale.id}`, ifMatch: 'W/"9"' },
          },
        ],
      },
    });
  } catch (e) {
    refused = e;
  }
  checkEq(refused?.response?.status, 412, 'transaction with a stale If-Match status');
  checkEq(refused.response.data?.resourceType, 'OperationOutcome', 'refused transaction body');
  const never = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${ID_SYSTEM}|never` } });
  checkEq(entries(never).length, 0, 'Patients written by a refused transaction');
  const untouched = await client.read({ resourceType: 'Patient', id: stale.id });
  checkEq(untouched.meta?.versionId, '1', 'Patient version after a refused transaction');
  checkSameContent(untouched, stale.body, 'Patient after a refused transaction');

  step('update and delete, then instance history');
  const target = patients[0];
  const v2 = await client.update({
    resourceType: 'Patient',
    id: target.id,
    body: { ...target.body, id: target.id, gender: 'other' },
  });
  checkEq(v2.meta?.versionId, '2', 'update meta.versionId');
  const v3 = await client.update({
    resourceType: 'Patient',
    id: target.id,
    body: { ...target.body, id: target.id, gender: 'unknown' },
  });
  checkEq(v3.meta?.versionId, '3', 'second update meta.versionId');
  const deleted = patients[1];
  await client.delete({ resourceType: 'Patient', id: deleted.id });
  let gone;
  try {
    await client.read({ resourceType: 'Patient', id: deleted.id });
  } catch (e) {
    gone = e;
  }
  checkEq(gone?.response?.status, 410, 'read of a deleted Patient status');

  const hist = await client.history({ resourceType: 'Patient', id: target.id });
  checkEq(hist.type, 'history', 'instance history type');
  checkEq(entries(hist).map((e) => e.resource?.meta?.versionId), ['3', '2', '1'], 'instance history versions, newest first');
  checkEq(entries(hist).map((e) => e.resource?.gender), ['unknown', 'other', target.body.gender], 'instance history genders');
  checkEq(entries(hist).map((e) => e.request?.method), ['PUT', 'PUT', 'POST'], 'instance history request methods');
  for (const e of entries(hist)) {
    const old = await client.vread({ resourceType: 'Patient', id: target.id, version: e.resource.meta.versionId });
    checkEq(old, e.resource, `vread Patient/${target.id}/_history/${e.resource.meta.versionId}`);
  }
  const delHist = await client.history({ resourceType: 'Patient', id: deleted.id });
  checkEq(entries(delHist).map((e) => e.request?.method), ['DELETE', 'POST'], 'deleted Patient history methods');
  check(entries(delHist)[0].resource === undefined, 'the DELETE history entry carries no resource');

  step(`type history of Patient, ${PAGE} a page, to the end with nextPage`);
  const typeFirst = await client.request(`Patient/_history?_count=${PAGE}`);
  const histPages = await allPages(typeFirst, 'history', 'Patient type history');
  // Everything this run wrote to Patient, one entry per version.
  const expected = new Set();
  for (const p of patients) expected.add(`${p.id}/POST`);
  expected.add(`${target.id}/PUT/2`).add(`${target.id}/PUT/3`);
  expected.add(`${deleted.id}/DELETE`);
  expected.add(`${txPat.id}/POST`);
  const versions = histPages.flatMap((pg) =>
    entries(pg).map((e) => {
      const id = e.resource?.id ?? /Patient\/([^/]+)/.exec(e.request?.url ?? '')?.[1];
      const m = e.request?.method;
      return m === 'PUT' ? `${id}/PUT/${e.resource?.meta?.versionId}` : `${id}/${m}`;
    }),
  );
  checkExactlyOnce(versions, expected, 'Patient type history over all pages');
  checkEq(histPages.length, Math.ceil(expected.size / PAGE), 'Patient type history page count');
}

try {
  await main();
  console.log('fhir-kit: all checks passed');
} catch (e) {
  if (e instanceof Mismatch) {
    console.error(`fhir-kit: FAILED in "${currentStep}": ${e.message}`);
  } else if (e?.response) {
    console.error(`fhir-kit: FAILED in "${currentStep}": ${e.message}`);
    console.error(`fhir-kit: response body: ${JSON.stringify(e.response.data)}`);
  } else {
    console.error(`fhir-kit: FAILED in "${currentStep}" with an error:`, e);
  }
  process.exit(1);
}
