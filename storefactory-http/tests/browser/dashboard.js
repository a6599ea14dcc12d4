// Drives the Storefactory dashboard in headless Chromium, as a user would: a wrong password
// is refused, the right one logs in, a store is created and reaches "ready" live, its
// credentials are shown, and deleting it removes it from the list.
//
// Usage: node dashboard.js BASE_URL USERNAME PASSWORD   (exits non-zero on any failure)
'use strict';
const { chromium } = require('playwright-core');

const [baseUrl, username, password] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function until(condition, what, ms = 15000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const scriptErrors = [];
    page.on('pageerror', (e) => scriptErrors.push(String(e)));
    await page.goto(baseUrl);

    await page.fill('#username', username);
    await page.fill('#password', 'not-the-password');
    await page.click('#login-form button');
    await page.waitForFunction(() => document.querySelector('#login-error').textContent.trim() !== '');
    check((await page.textContent('#login-error')).includes('invalid'), 'a wrong password is not reported');
    check(await page.isHidden('#app-view'), 'the app is shown after a failed login');

    await page.fill('#password', password);
    await page.click('#login-form button');
    await page.waitForSelector('#app-view:not([hidden])', { timeout: 15000 });
    check((await page.textContent('#who')).includes(username), 'the logged-in user is not shown');

    const shop = `Browser Shop ${Date.now()}`;
    await page.fill('#store-name', shop);
    await page.fill('#products', 'Mug|4.50|Ceramic <b>mug</b>\nHat|10|Warm');
    await page.click('#create-form button');
    // The status moves to "ready" by itself, from the live event stream.
    await page.waitForFunction(
      (name) => [...document.querySelectorAll('#stores tr')].some((row) =>
        row.textContent.includes(name) && row.textContent.includes('ready')),
      shop, { timeout: 90000 });
    check(!(await page.content()).includes('<b>mug</b>'), 'product text was rendered as HTML');

    const row = page.locator('#stores tr', { hasText: shop });
    // Credentials come in an alert, deletion asks for confirmation: accept each as it opens.
    const dialogs = [];
    page.on('dialog', async (dialog) => {
      dialogs.push(dialog.message());
      await dialog.accept();
    });
    await row.getByText('Credentials').click();
    await until(() => dialogs.length > 0, 'the credentials');
    check(dialogs.some((m) => m.includes('wp-admin') && m.includes('Password:')),
      `the credentials are not shown: ${JSON.stringify(dialogs)}`);

    await row.getByText('Delete').click();
    await until(() => dialogs.length > 1, 'the delete confirmation');
    check(dialogs.some((m) => m.includes(`Delete store ${shop}`)),
      `deleting did not ask first: ${JSON.stringify(dialogs)}`);
    await page.waitForFunction(
      (name) => ![...document.querySelectorAll('#stores tr')].some((r) => r.textContent.includes(name)),
      shop, { timeout: 90000 });

    check(scriptErrors.length === 0, `script errors: ${scriptErrors.join('; ')}`);
    console.log('dashboard: login, create, live ready, credentials and delete all work');
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(`dashboard test failed: ${error.stack || error}`);
  process.exit(1);
});
