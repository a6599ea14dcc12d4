// Drives the Storefactory dashboard in headless Chromium as its users would, and checks what
// they would notice: logging in by keyboard, the create form (product rows, generated and
// copied passwords, the storage hint, checks before sending, the server's message next to
// the field), live provisioning progress, hostile names and product text shown as text, the
// detail view with its history, credentials in the page, a failed store and Retry, Suspend
// and Resume, custom domains (added, refused with the reason, removed), Change, deletion,
// quota meters and an over-quota create, stores created elsewhere appearing, pages, the admin
// view, webhooks (a hostile URL shown as text, the secret shown once, the delivery log of a
// store's events, removal), a phone-sized screen, labels and no CSP violations.
//
// Usage: node dashboard.js BASE_URL ADMIN_USERNAME ADMIN_PASSWORD   (exits non-zero on a failure)
//
// The test that runs it (tests/dashboard.rs) injects kubelet faults on request: this script
// prints `@@fault NAME` and waits for `ok` on its standard input. With
// STOREFACTORY_SCREENSHOTS=DIR it saves screenshots of the main screens in DIR.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');

const [baseUrl, adminName, adminPassword] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.STOREFACTORY_SCREENSHOTS || '';
const LONG = 90000;
const tag = Date.now().toString(36);

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function step(text) {
  console.log(`- ${text}`);
}

const replies = readline.createInterface({ input: process.stdin });
const waiting = [];
replies.on('line', (line) => { const next = waiting.shift(); if (next) next(line); });

/** Asks the Rust test for a kubelet fault (or `clear`) and waits until it is in place. */
async function fault(name) {
  const answer = new Promise((resolve) => waiting.push(resolve));
  console.log(`@@fault ${name}`);
  check((await answer) === 'ok', `fault ${name} was not set`);
}

async function shot(page, name, fullPage = true) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

/** The API as another client (a script, the CLI, another tab) would use it. */
async function callApi(method, route, token, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(new URL(route, baseUrl), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

async function tokenOf(username, password) {
  const { status, data } = await callApi('POST', '/api/auth/login', null, { username, password });
  check(status === 200, `login of ${username} failed: ${JSON.stringify(data)}`);
  return data.access_token;
}

function cardOf(page, text) {
  return page.locator('#stores li.card', { has: page.locator('h3', { hasText: text }) });
}

async function login(page, username, password) {
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#app-view:not([hidden])', { timeout: 15000 });
}

/** Watches the page for signs that data was turned into markup or script. */
async function assertNothingInjected(page, where) {
  const found = await page.evaluate(() => ({
    pwned: window.__pwned,
    nodes: document.querySelectorAll('#stores img, #stores b, #stores script, #detail img, #detail b, #detail script, '
      + '#webhooks-view img, #webhooks-view b, #webhooks-view script').length,
  }));
  check(found.pwned === undefined, `${where}: script from data ran (${found.pwned})`);
  check(found.nodes === 0, `${where}: data was rendered as HTML (${found.nodes} elements)`);
}

async function newPage(browser, url, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  page.problems = [];
  page.storePosts = 0;
  page.on('pageerror', (e) => page.problems.push(`script error: ${e}`));
  page.on('dialog', async (d) => { page.problems.push(`a browser dialog opened: ${d.message()}`); await d.dismiss(); });
  page.on('console', (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) page.problems.push(`CSP: ${m.text()}`); });
  page.on('request', (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/stores') page.storePosts += 1; });
  await page.goto(url);
  return page;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const pages = [];
  try {
    // ------------------------------------------------------------ logging in
    const admin = await newPage(browser, baseUrl);
    pages.push(admin);
    await shot(admin, 'login');
    step('a wrong password shows the server\'s message');
    await admin.fill('#username', adminName);
    await admin.fill('#password', 'not-the-password');
    await admin.click('#login-form button[type=submit]');
    await admin.waitForFunction(() => document.querySelector('#login-error').textContent.trim() !== '');
    check((await admin.textContent('#login-error')) === 'Invalid credentials', 'the server\'s login message is not shown');
    check(await admin.isHidden('#app-view'), 'the app is shown after a failed login');

    step('logging in by keyboard alone');
    await admin.fill('#password', '');
    await admin.focus('#username');
    await admin.keyboard.press('Control+A');
    await admin.keyboard.type(adminName);
    await admin.keyboard.press('Tab');
    check(await admin.evaluate(() => document.activeElement.id === 'password'), 'Tab does not lead from username to password');
    await admin.keyboard.type(adminPassword);
    await admin.keyboard.press('Enter');
    await admin.waitForSelector('#app-view:not([hidden])', { timeout: 15000 });
    check((await admin.textContent('#who')).includes(adminName), 'the logged-in user is not shown');
    await admin.waitForFunction(() => document.activeElement.id === 'stores-title', null, { timeout: 5000 })
      .catch(() => { throw new Error('focus is not moved into the app after login'); });

    // ------------------------------------------------------------ the admin view
    step('the admin creates a user with a quota and changes it');
    const olivia = `olivia${tag}`;
    const oliviaPassword = 'olivia-password-1';
    await admin.click('#tab-users');
    await admin.waitForSelector('#users tr');
    await admin.fill('#new-username', olivia);
    await admin.fill('#new-password', oliviaPassword);
    await admin.fill('#new-max-stores', '1');
    await admin.fill('#new-max-storage', '8');
    await admin.click('#user-form button[type=submit]');
    const oliviaRow = admin.locator(`#users tr[data-user="${olivia}"]`);
    await oliviaRow.waitFor();
    check((await oliviaRow.locator('.usage-stores').textContent()) === '0 / 1', 'the new user\'s quota is not listed');
    check((await oliviaRow.locator('.usage-storage').textContent()) === '0 / 8', 'the new user\'s storage quota is not listed');
    await oliviaRow.getByRole('spinbutton', { name: `Max storage of ${olivia} in GiB` }).fill('10');
    await oliviaRow.getByRole('button', { name: `Save quota of ${olivia}` }).click();
    await admin.waitForFunction((name) =>
      document.querySelector(`#users tr[data-user="${name}"] .usage-storage`).textContent === '0 / 10', olivia);
    await admin.fill('#new-username', olivia);
    await admin.fill('#new-password', oliviaPassword);
    await admin.click('#user-form button[type=submit]');
    await admin.waitForFunction(() => document.querySelector('#new-username-error').textContent.includes('exists'));
    check(await admin.evaluate(() => document.activeElement.id === 'new-username'
      && document.activeElement.getAttribute('aria-invalid') === 'true'), 'a duplicate user is not reported at the field');

    // ------------------------------------------------------------ webhooks
    step('webhooks: the server\'s message at the URL, a hostile URL shown as text, the secret shown once');
    await admin.click('#tab-webhooks');
    await admin.waitForSelector('#webhooks-view:not([hidden])');
    await admin.waitForFunction(() => !document.querySelector('#webhooks-empty').hidden);
    check(await admin.evaluate(() => document.activeElement.id === 'webhooks-title'), 'the Webhooks tab does not take the focus');
    await admin.fill('#webhook-url', 'https://169.254.169.254/latest/meta-data');
    await admin.click('#webhook-add');
    await admin.waitForFunction(() => document.querySelector('#webhook-url-error').textContent !== '');
    check((await admin.textContent('#webhook-url-error')).startsWith('url: must not point at a private'),
      `the server's refusal is not shown at the URL: ${await admin.textContent('#webhook-url-error')}`);
    check(await admin.evaluate(() => document.activeElement.id === 'webhook-url'
      && document.activeElement.getAttribute('aria-invalid') === 'true'), 'the refused URL does not get the focus');
    // Markup cannot survive URL parsing: the most hostile URL the server accepts carries
    // quotes, an escaped entity, a percent-encoded tag and a javascript: text.
    const hookUrl = `https://hooks-${tag}.storefactory-test.invalid/'onmouseover='window.__pwned=5'/&lt;img&gt;`
      + '/%3Cimg%20src=x%20onerror=window.__pwned=7%3E?next=javascript:window.__pwned=6';
    await admin.fill('#webhook-url', hookUrl);
    await admin.selectOption('#webhook-events', 'all');
    await admin.click('#webhook-add');
    await admin.waitForSelector('#webhook-secret:not([hidden])');
    const hookSecret = await admin.textContent('#webhook-secret-value');
    check(/^whsec_[0-9a-f]{64}$/.test(hookSecret), `the secret is not shown: ${hookSecret}`);
    check((await admin.textContent('#webhook-secret')).includes('shown only'), 'the secret comes without the word that it is shown once');
    check(await admin.evaluate(() => document.activeElement.id === 'webhook-secret-title'), 'the secret does not take the focus');
    await admin.click('#webhook-secret-copy');
    await admin.waitForFunction(() => document.querySelector('#webhook-secret-copy').textContent === 'Copied');
    check((await admin.evaluate(() => navigator.clipboard.readText())) === hookSecret, 'Copy did not copy the secret');
    const hookRow = admin.locator('#webhooks tr', { has: admin.locator('code.hook-url') });
    await hookRow.waitFor();
    check((await hookRow.locator('code.hook-url').textContent()) === hookUrl, `the URL is not shown as text: ${await hookRow.textContent()}`);
    check(await admin.inputValue('#webhook-url') === '', 'the form keeps the added URL');
    await assertNothingInjected(admin, 'the webhook list');
    await hookRow.hover();
    await assertNothingInjected(admin, 'the webhook list under the mouse');
    const hooksListed = await callApi('GET', '/api/webhooks', await tokenOf(adminName, adminPassword));
    check(hooksListed.data.webhooks.length === 1 && !JSON.stringify(hooksListed.data).includes(hookSecret),
      'the API lists the webhook with its secret');
    await shot(admin, 'webhook-secret');
    await admin.click('#webhook-secret-done');
    check(await admin.isHidden('#webhook-secret'), 'the secret does not hide');
    await admin.click('#webhooks-refresh');
    await hookRow.waitFor();
    check(!(await admin.content()).includes(hookSecret), 'the secret is still in the page after hiding it');
    await admin.click('#tab-stores');
    await admin.click('#tab-webhooks');
    await hookRow.waitFor();
    check(await admin.isHidden('#webhook-secret') && !(await admin.content()).includes(hookSecret),
      'the secret is shown a second time');

    // ------------------------------------------------------------ the create form
    await admin.click('#tab-stores');
    step('the create form: sample rows, add and remove, the storage hint, a generated and copied password');
    check((await admin.locator('#products li').count()) === 3, 'the sample products are not prefilled');
    await admin.click('#add-product');
    check((await admin.locator('#products li').count()) === 4, 'Add product adds no row');
    check(await admin.evaluate(() => document.activeElement === document.querySelector('#products li:last-child .p-name')),
      'the new product row does not get the focus');
    await admin.click('#products li:last-child .p-remove');
    check((await admin.locator('#products li').count()) === 3, 'Remove does not remove the row');
    await admin.fill('#storage', '4');
    check((await admin.textContent('#storage-hint')) === 'MySQL needs 1 GiB more: total 5 GiB', 'the storage hint is wrong');
    await admin.fill('#storage', '2');
    await admin.click('#generate-password');
    const generated = await admin.inputValue('#admin-password');
    check(generated.length === 20, `no password was generated: ${generated}`);
    await admin.click('#copy-password');
    await admin.waitForFunction(() => document.querySelector('#copy-password').textContent === 'Copied');
    check((await admin.evaluate(() => navigator.clipboard.readText())) === generated, 'Copy did not copy the password');
    await admin.fill('#admin-password', '');

    step('checks before sending: a wrong price is shown at its row and nothing is sent');
    await admin.fill('#products li:nth-child(2) .p-price', 'twelve');
    await admin.click('#create-button');
    await admin.waitForFunction(() => document.querySelector('#products-error').textContent.includes('price'));
    check(await admin.evaluate(() => document.activeElement === document.querySelector('#products li:nth-child(2) .p-price')
      && document.activeElement.getAttribute('aria-invalid') === 'true'), 'the wrong price does not get the focus');
    check(admin.storePosts === 0, 'a create with a wrong price was sent');
    await admin.fill('#products li:nth-child(2) .p-price', '12.99');

    step('the server\'s validation message is shown next to the field it names');
    // Tabs are accepted (pasted from spreadsheets); an escape character is not.
    await admin.fill('#products li:nth-child(1) .p-name', 'Esc\u001bhere');
    await admin.click('#create-button');
    await admin.waitForFunction(() => document.querySelector('#products-error').textContent.includes('control characters'));
    check(admin.storePosts === 1, 'the create was not sent to the server');
    check((await admin.textContent('#products-error')).startsWith('sample_products[0]'), 'the server\'s message is not the one shown');
    check(await admin.evaluate(() => document.querySelector('#products li:nth-child(1) .p-name').getAttribute('aria-invalid') === 'true'),
      'the product the server refused is not marked');

    // ------------------------------------------------------------ live progress, hostile text
    step('a store with a hostile name and hostile products provisions live, step by step');
    const mark = `H${tag}x`;
    const hostile = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> ${mark}`;
    await admin.fill('#store-name', hostile);
    await admin.fill('#products li:nth-child(1) .p-name', '<b>Bold</b> & "quoted"');
    await admin.fill('#products li:nth-child(1) .p-description', '<img src=x onerror="window.__pwned=3">');
    await fault('slow-wordpress');
    await admin.click('#create-button');
    const hostileCard = cardOf(admin, mark);
    await hostileCard.waitFor();
    check((await hostileCard.locator('h3').textContent()) === hostile, 'the hostile name is not shown as text');
    // Part-way: some steps done, WordPress not yet, the clock running.
    await admin.waitForFunction((t) => {
      const card = [...document.querySelectorAll('#stores li.card')].find((c) => c.textContent.includes(t));
      const done = card ? [...card.querySelectorAll('.steps li.done')].map((li) => li.textContent) : [];
      return card && !card.querySelector('.progress').hidden && done.includes('Database ready') && !done.includes('WordPress ready');
    }, mark, { timeout: LONG });
    const bar = await hostileCard.locator('progress').evaluate((p) => p.value);
    check(bar >= 2 && bar < 4, `the progress bar part-way is ${bar} of 4`);
    const doneSteps = await hostileCard.locator('.steps li.done').allTextContents();
    check(doneSteps.includes('Applied') && doneSteps.includes('Database ready') && !doneSteps.includes('WordPress ready'),
      `the steps part-way are wrong: ${doneSteps}`);
    const elapsed1 = await hostileCard.locator('.elapsed').textContent();
    await admin.waitForTimeout(1600);
    const elapsed2 = await hostileCard.locator('.elapsed').textContent();
    check(/^Elapsed: \d+ s$/.test(elapsed1) && elapsed1 !== elapsed2, `the elapsed time does not run: ${elapsed1} / ${elapsed2}`);
    await shot(admin, 'progress');
    await hostileCard.locator('.badge.ready').waitFor({ timeout: LONG });
    await fault('clear');
    check((await hostileCard.locator('.steps li.done').count()) === 4 || await hostileCard.locator('.progress').isHidden(),
      'a ready store still shows steps to do');
    check(/^Ready after \d+/.test(await hostileCard.locator('.took').textContent()), 'the time to ready is not shown');
    const fieldsText = await hostileCard.locator('dl').textContent();
    for (const expected of ['Namespace', 'store-', 'Owner', adminName, 'Admin user', 'GiB', 'Created']) {
      check(fieldsText.includes(expected), `the card lacks ${expected}: ${fieldsText}`);
    }
    check((await hostileCard.getByRole('link', { name: 'Admin panel' }).getAttribute('href')).endsWith('/wp-admin/'),
      'the card has no Admin panel link');
    await assertNothingInjected(admin, 'the store list');

    step('the detail view shows fields, products as text and the event history');
    const detailsButton = hostileCard.getByRole('button', { name: /^Details/ });
    await detailsButton.click();
    await admin.waitForSelector('#detail[open]');
    await admin.waitForFunction(() => [...document.querySelectorAll('#detail-events li')].some((li) => li.textContent.includes('Status ready')));
    check((await admin.textContent('#detail-title')) === hostile, 'the detail title is not the name as text');
    const products = await admin.locator('#detail-products li').allTextContents();
    check(products.some((p) => p.includes('<b>Bold</b> & "quoted"') && p.includes('<img src=x onerror="window.__pwned=3">')),
      `the hostile product is not shown as text: ${products}`);
    const history = await admin.locator('#detail-events li').allTextContents();
    for (const expected of ['Status initialized', 'apply:', 'mysql: MySQL is ready', 'wordpress: WordPress is ready', 'seed:', 'Status ready']) {
      check(history.some((h) => h.includes(expected)), `the history lacks ${expected}: ${history}`);
    }
    // No backup yet (this server has no backup endpoint: taking one is refused, saying why).
    await admin.waitForFunction(() => document.querySelector('#detail-backups li')?.textContent === 'No backups');
    await assertNothingInjected(admin, 'the detail view');
    await shot(admin, 'detail', false);
    await admin.keyboard.press('Escape');
    await admin.waitForSelector('#detail:not([open])', { state: 'attached' });
    check(await detailsButton.evaluate((b) => b === document.activeElement), 'focus does not return to Details after closing');

    step('a ready store offers a backup and a clone; without a backup endpoint the backup is refused with the reason');
    await hostileCard.getByRole('button', { name: /^Back up/ }).click();
    await admin.waitForFunction(() => !document.querySelector('#banner')?.hidden
      && document.querySelector('#banner')?.textContent.includes('no backup endpoint'));
    check(await hostileCard.getByRole('button', { name: /^Clone/ }).isVisible(), 'a ready store offers no clone');
    await admin.click('#banner-close');

    step('credentials are shown in the page on demand, with copy buttons');
    await hostileCard.getByRole('button', { name: /^Show credentials/ }).click();
    const secret = hostileCard.locator('.secret');
    await secret.waitFor();
    const rows = await secret.locator('.secret-row').allTextContents();
    check(rows.some((r) => r.startsWith('Useradmin')), `no user in the credentials: ${rows}`);
    check(rows.some((r) => r.includes('/wp-admin/')), `no admin URL in the credentials: ${rows}`);
    const password = await secret.locator('.secret-row', { hasText: 'Password' }).locator('code').textContent();
    check(password.length >= 12, 'no password in the credentials');
    await secret.getByRole('button', { name: 'Copy password' }).click();
    await admin.waitForFunction(() => [...document.querySelectorAll('.secret button')].some((b) => b.textContent === 'Copied'));
    check((await admin.evaluate(() => navigator.clipboard.readText())) === password, 'Copy did not copy the store password');
    await shot(admin, 'stores');
    await secret.getByRole('button', { name: 'Hide credentials' }).click();
    check(await secret.isHidden(), 'the credentials do not hide');
    check(!(await admin.content()).includes(password), 'the password stays in the page after hiding it');

    // ------------------------------------------------------------ a failed store and Retry
    step('a store that fails shows why and comes up after Retry');
    await fault('seed-image-pull');
    await admin.fill('#store-name', `Failing ${tag}`);
    await admin.click('#create-button');
    const failing = cardOf(admin, `Failing ${tag}`);
    await failing.locator('.badge.failed').waitFor({ timeout: LONG });
    const reason = await failing.locator('.reason').textContent();
    check(reason.startsWith('Failed: ') && reason.includes('cannot be pulled'), `the failure reason is not shown: ${reason}`);
    await shot(admin, 'failed');
    await fault('clear');
    await failing.getByRole('button', { name: /^Retry/ }).click();
    await failing.locator('.badge.ready').waitFor({ timeout: LONG });
    check(await failing.locator('.reason').isHidden(), 'the failure reason stays after the store became ready');

    step('the webhook\'s deliveries of the admin\'s store events: time, event, state, attempts, status');
    await admin.click('#tab-webhooks');
    await hookRow.getByRole('button', { name: /^Deliveries/ }).click();
    await admin.waitForSelector('#deliveries:not([hidden])');
    check(await admin.evaluate(() => document.activeElement.id === 'deliveries-title'), 'the deliveries do not take the focus');
    // The receiver's name never resolves: the status events of the stores made since are
    // being retried, with the reason and no HTTP status.
    const hostileId = await hostileCard.getAttribute('data-id');
    // The open log is read again at every refresh of the page (every 5 s here).
    await admin.waitForFunction((id) => [...document.querySelectorAll('#deliveries-rows tr')].some((tr) =>
      tr.children[2].textContent === id && tr.children[1].textContent === 'status' && Number(tr.children[4].textContent) >= 1),
    hostileId, { timeout: 60000 });
    const delivery = admin.locator('#deliveries-rows tr', { hasText: hostileId }).first();
    const cells = await delivery.locator('td').allTextContents();
    check(['pending', 'failed'].includes(cells[3]), `the delivery's state is wrong: ${cells}`);
    check(cells[5] === '–' && cells[6] !== '', `a delivery that got no answer shows a status or no reason: ${cells}`);
    check(await delivery.locator('time').getAttribute('datetime') !== null, 'the delivery has no time');
    await shot(admin, 'webhook-deliveries');
    await admin.click('#deliveries-close');
    check(await admin.isHidden('#deliveries'), 'the deliveries do not close');

    step('removing a webhook asks first, then it is gone');
    await hookRow.getByRole('button', { name: /^Remove/ }).click();
    check(await admin.evaluate(() => document.activeElement.textContent === 'Keep'), 'the removal confirmation does not take the focus');
    await hookRow.getByRole('button', { name: /^Really remove/ }).click();
    await admin.waitForFunction(() => !document.querySelector('#webhooks-empty').hidden);
    check((await admin.locator('#webhooks tr').count()) === 0, 'the removed webhook is still listed');
    await admin.click('#tab-stores');

    step('a ready store is suspended and resumed from its card');
    check((await failing.getByRole('button', { name: /^Resume/ }).count()) === 0, 'a ready store offers Resume');
    await failing.getByRole('button', { name: /^Suspend/ }).click();
    await failing.locator('.badge.suspended').waitFor({ timeout: LONG });
    check((await failing.getByRole('button', { name: /^Suspend/ }).count()) === 0, 'a suspended store offers Suspend');
    check((await failing.getByRole('button', { name: /^Show credentials/ }).count()) === 0,
      'a suspended store offers its credentials');
    await shot(admin, 'suspended');
    await failing.getByRole('button', { name: /^Resume/ }).click();
    await failing.locator('.badge.ready').waitFor({ timeout: LONG });

    step('custom domains are added and removed from the card, and a bad one is refused with the reason');
    await failing.getByRole('button', { name: /^Custom domains of/ }).click();
    const domainInput = failing.getByRole('textbox', { name: /^New domain for/ });
    check(await admin.evaluate(() => document.activeElement.name === 'domain'), 'the domains panel does not take the focus');
    await domainInput.fill(`Shop-${tag}.Example.com.`);
    await failing.getByRole('button', { name: /^Add domain to/ }).click();
    const shown = `shop-${tag}.example.com`;
    await failing.locator('.fields .domain-list a', { hasText: shown }).waitFor({ timeout: 15000 });
    check((await failing.locator('.fields .domain-list a').getAttribute('href')) === `http://${shown}/`,
      'the domain does not link to the store');
    check((await failing.locator('.badge.ready').count()) === 1, 'the store is not ready after adding a domain');
    await domainInput.fill('*.bad.example');
    await failing.getByRole('button', { name: /^Add domain to/ }).click();
    const domainError = failing.locator('.domain-error');
    await domainError.waitFor({ state: 'visible', timeout: 15000 });
    check((await domainError.textContent()).includes('wildcards'), `the refusal does not say why: ${await domainError.textContent()}`);
    check((await failing.getByRole('textbox', { name: /^New domain for/ }).inputValue()) === '*.bad.example',
      'the refused domain is not kept for correcting');
    await shot(admin, 'domains');
    await failing.getByRole('button', { name: `Remove domain ${shown}` }).click();
    await failing.locator('.fields .domain-list').waitFor({ state: 'detached', timeout: 15000 });
    check((await failing.locator('.domains').textContent()).includes('No custom domains'), 'the removed domain is still listed');

    step('a ready store is changed from its card: a smaller volume is refused, a bigger one applied');
    await failing.getByRole('button', { name: /^Change/ }).click();
    const change = failing.getByRole('form', { name: /^Change/ });
    const storageInput = change.getByLabel(/WordPress storage/);
    check(await admin.evaluate(() => document.activeElement.type === 'number'), 'the change form does not take the focus');
    const current = Number(await storageInput.inputValue());
    await storageInput.fill(String(current - 1));
    await change.getByRole('button', { name: /^Apply the change/ }).click();
    await change.getByRole('alert').waitFor();
    check(/below the current size/.test(await change.getByRole('alert').textContent()),
      'a smaller volume is not refused with the server\'s message');
    check((await storageInput.getAttribute('aria-invalid')) === 'true', 'the refused field is not marked');
    await storageInput.fill(String(current + 1));
    await change.getByLabel(/Site title/).fill('Changed in the browser');
    await change.getByRole('button', { name: /^Apply the change/ }).click();
    await failing.locator('.badge.updating').or(failing.locator('.badge.ready')).first().waitFor({ timeout: LONG });
    await failing.locator('.badge.ready').waitFor({ timeout: LONG });
    await failing.getByRole('button', { name: /^Change/ }).waitFor({ timeout: LONG });
    check((await failing.textContent('.fields')).includes(`${current + 1} GiB`), 'the card does not show the bigger volume');
    await shot(admin, 'changed');

    step('deleting asks in the page, then the store goes away');
    await failing.getByRole('button', { name: /^Delete/ }).click();
    check(await admin.evaluate(() => document.activeElement.textContent === 'Cancel'), 'the delete confirmation does not take the focus');
    await failing.getByRole('button', { name: /^Really delete/ }).click();
    await failing.waitFor({ state: 'detached', timeout: LONG });

    // ------------------------------------------------------------ quota and an over-quota create
    step('an over-quota create shows the server\'s message and the page keeps working');
    const user = await newPage(browser, `${baseUrl}?refresh=0`);
    pages.push(user);
    await login(user, olivia, oliviaPassword);
    check((await user.textContent('#meter-stores-text')) === '0 of 1 stores', 'the store meter is wrong');
    check((await user.textContent('#meter-storage-text')) === '0 of 10 GiB', 'the storage meter is wrong');
    const oliviaToken = await tokenOf(olivia, oliviaPassword);
    const elsewhere = await callApi('POST', '/api/stores', oliviaToken, { name: `Elsewhere ${tag}`, storage_size_gi: '2' });
    check(elsewhere.status === 201, `the store made elsewhere failed: ${JSON.stringify(elsewhere.data)}`);
    await user.click('#create-button');
    await user.waitForFunction(() => document.querySelector('#create-error').textContent !== '');
    const refusal = await user.textContent('#create-error');
    check(refusal.includes('store limit reached: 1 of 1'), `the server's quota message is not shown: ${refusal}`);
    check((await user.textContent('#banner-text')) === refusal, 'the banner does not show the server\'s message');
    await shot(user, 'over-quota');
    await user.click('#refresh');
    await cardOf(user, `Elsewhere ${tag}`).waitFor();
    await user.waitForFunction(() => document.querySelector('#meter-stores-text').textContent === '1 of 1 stores');
    check((await user.textContent('#meter-storage-text')) === '3 of 10 GiB', 'the storage meter does not count MySQL');
    const posts = user.storePosts;
    await user.click('#create-button');
    await user.waitForFunction(() => document.querySelector('#create-error').textContent.startsWith('Store limit reached'));
    check(user.storePosts === posts, 'an over-quota create was sent though the page knew better');

    step('the storage quota is checked before sending');
    const adminToken = await tokenOf(adminName, adminPassword);
    const raised = await callApi('PUT', `/api/users/${olivia}/quota`, adminToken, { max_stores: 3, max_storage_gib: 10 });
    check(raised.status === 200, 'cannot raise the quota');
    await user.click('#refresh');
    await user.waitForFunction(() => document.querySelector('#meter-stores-text').textContent === '1 of 3 stores');
    await user.fill('#storage', '8');
    await user.click('#create-button');
    await user.waitForFunction(() => document.querySelector('#storage-error').textContent.includes('only 7 GiB'));
    check(user.storePosts === posts, 'a create over the storage quota was sent');

    // ------------------------------------------------------------ lists stay correct
    step('stores created elsewhere appear without a reload');
    const watcher = await newPage(browser, baseUrl);
    pages.push(watcher);
    await login(watcher, olivia, oliviaPassword);
    await cardOf(watcher, `Elsewhere ${tag}`).waitFor();
    const second = await callApi('POST', '/api/stores', oliviaToken, { name: `Second ${tag}`, storage_size_gi: 1 });
    check(second.status === 201, 'cannot create a second store');
    await cardOf(watcher, `Second ${tag}`).waitFor({ timeout: 20000 });
    await cardOf(watcher, `Second ${tag}`).locator('.badge.ready').waitFor({ timeout: LONG });

    step('many stores come in pages');
    const third = await callApi('POST', '/api/stores', oliviaToken, { name: `Third ${tag}`, storage_size_gi: 1 });
    check(third.status === 201, 'cannot create a third store');
    const pager = await newPage(browser, `${baseUrl}?per_page=2&refresh=0`);
    pages.push(pager);
    await login(pager, olivia, oliviaPassword);
    await pager.waitForFunction(() => document.querySelectorAll('#stores li.card').length === 2);
    const firstPage = await pager.locator('#stores h3').allTextContents();
    check(firstPage[0] === `Third ${tag}` && firstPage[1] === `Second ${tag}`, `the first page is not the newest stores: ${firstPage}`);
    check(await pager.isDisabled('#prev-page') && !(await pager.isDisabled('#next-page')), 'the pager buttons are wrong on page 1');
    await pager.click('#next-page');
    await pager.waitForFunction(() => document.querySelector('#page-label').textContent === 'Page 2');
    const secondPage = await pager.locator('#stores h3').allTextContents();
    check(secondPage.length === 1 && secondPage[0] === `Elsewhere ${tag}`, `the second page is wrong: ${secondPage}`);
    check(await pager.isDisabled('#next-page') && !(await pager.isDisabled('#prev-page')), 'the pager buttons are wrong on the last page');
    await pager.click('#prev-page');
    await pager.waitForFunction(() => document.querySelector('#page-label').textContent === 'Page 1');

    step('an admin sees everyone\'s stores on request, but not their credentials');
    await admin.check('#all-stores');
    await cardOf(admin, `Third ${tag}`).waitFor();
    await cardOf(admin, `Third ${tag}`).locator('.badge.ready').waitFor({ timeout: LONG });
    check((await cardOf(admin, `Third ${tag}`).getByRole('button', { name: /^Show credentials/ }).count()) === 0,
      'an admin is offered another user\'s credentials');
    await admin.uncheck('#all-stores');
    await admin.click('#tab-users');
    await admin.waitForFunction((name) => {
      const row = document.querySelector(`#users tr[data-user="${name}"] .usage-stores`);
      return row && row.textContent === '3 / 3';
    }, olivia);
    await shot(admin, 'users');
    await admin.click('#tab-stores');

    // ------------------------------------------------------------ a phone, labels, focus
    step('readable on a phone: nothing wider than the screen');
    const phone = await newPage(browser, baseUrl, { width: 390, height: 844 });
    pages.push(phone);
    await login(phone, olivia, oliviaPassword);
    await cardOf(phone, `Third ${tag}`).waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
    await shot(phone, 'phone');

    step('every control has a name, live regions exist, and focus is visible');
    for (const page of [admin, phone]) {
      const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button, meter, progress')]
        .filter((e) => e.offsetParent !== null)
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.textContent || '').trim())
        .map((e) => e.outerHTML.slice(0, 80)));
      check(unnamed.length === 0, `controls without a name: ${unnamed}`);
    }
    check(await admin.getAttribute('#banner', 'role') === 'alert', 'the error banner is not an alert');
    check(await admin.getAttribute('#live', 'aria-live') === 'polite', 'there is no live region for announcements');
    await admin.focus('#refresh');
    await admin.keyboard.press('Shift+Tab');
    await admin.keyboard.press('Tab');
    const outline = await admin.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== 'none', 'the focused control has no visible outline');

    for (const page of pages) check(page.problems.length === 0, `problems in the page: ${page.problems.join('; ')}`);
    console.log('dashboard: every check passed');
  } finally {
    replies.close();
    await browser.close();
  }
})().catch((error) => {
  console.error(`dashboard test failed: ${error.stack || error}`);
  process.exit(1);
});
