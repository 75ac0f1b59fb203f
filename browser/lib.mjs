// What the browser tests share: the Chromium flags this machine needs, and
// numbered checks printed one a line ("ok    label" or "FAIL  label: why")
// ending with "N passed, N failed" and exit status 1 when one failed.

// Without the background-networking flags Chromium itself keeps calling
// Google's hosts (the browser's requests, not the page's), which this
// network refuses.
export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--headless',
  '--no-first-run',
  '--disable-quic',
];

const firstLine = (err) => String(err?.message ?? err).split('\n')[0];

export function checks() {
  let passed = 0;
  let failed = 0;
  // fail counts a failure, a check's or not (Chromium not starting, the
  // test stopping).
  const fail = (label, err) => {
    failed++;
    console.log(`FAIL  ${label}: ${firstLine(err)}`);
  };
  return {
    async check(label, fn) {
      try {
        await fn();
        passed++;
        console.log(`ok    ${label}`);
      } catch (err) {
        fail(label, err);
      }
    },
    fail,
    finish() {
      console.log(`${passed} passed, ${failed} failed`);
      process.exitCode = failed === 0 ? 0 : 1;
    },
  };
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export const show = (v) => JSON.stringify(v).slice(0, 300);
