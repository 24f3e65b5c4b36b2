// e2e for the web playground (issue #8): the real standalone gateway serves the vite build at `/`
// and Debian's Chromium, driven by playwright-core, uses it like a person would: uploads the golden
// image and audio, sets weights with the keyboard, streams an answer, stops it (and the server
// really stops generating), handles bad uploads and server errors, shows embeddings and search.
// Needs `npm run build` and `npx vite build services/gateway/web` first, and /usr/bin/chromium.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goldenPath, repoRoot, startStandaloneGateway, type ServiceProcess } from '@imagebind-llm/testing';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // A synthetic microphone (a beep), for the recording test; nothing real is opened.
  '--use-fake-device-for-media-stream',
];
/** Small enough that a file bigger than it is cheap to make, larger than the golden inputs. */
const MAX_INPUT_BYTES = 2 * 1024 * 1024;
/** The decoder's whole context (prompt + answer), MODEL_SPEC §1.3. */
const CONTEXT_POSITIONS = 512;
const QUESTION = "Guess the girl's mood based on the background music and explain the reason?";
const SHOTS = join(repoRoot(), 'test-results', 'playground');
const DIST = join(repoRoot(), 'services', 'gateway', 'web', 'dist', 'index.html');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

/** Polls `probe` until it returns a value (not undefined); no fixed sleeps, a generous deadline. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Sum of the samples of one metric whose labels contain every `label="value"` given. */
async function metric(
  httpBase: string,
  name: string,
  labels: Readonly<Record<string, string>>,
): Promise<number> {
  const body = await (await fetch(`${httpBase}/metrics`)).text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    if (wanted.every((w) => labelText.split(',').includes(w)))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const DECODER = { model: 'llama-decoder' };

/** The phase the answer panel is in (idle, preparing, waiting, streaming, done, stopped, error). */
async function phase(page: Page): Promise<string> {
  return (await page.getByTestId('run-status').getAttribute('data-phase')) ?? '';
}

async function answerText(page: Page): Promise<string> {
  return (await page.getByTestId('answer').textContent()) ?? '';
}

/** Waits for the run to settle in one of `phases` and returns the one it reached. */
async function settled(page: Page, phases: readonly string[], timeoutMs = 120_000): Promise<string> {
  return until(
    `the answer panel to reach ${phases.join(' or ')}`,
    async () => {
      const p = await phase(page);
      return phases.includes(p) ? p : undefined;
    },
    timeoutMs,
  );
}

/** Moves a range input with the keyboard, as a keyboard user would. */
async function pressTimes(slider: Locator, key: string, times: number): Promise<void> {
  await slider.focus();
  for (let i = 0; i < times; i++) await slider.press(key);
}

describe('web playground in Chromium against the standalone gateway', () => {
  let gateway: ServiceProcess;
  let browser: Browser;
  let temp: string;
  const problems: string[] = [];

  /** A page whose errors and CSP violations are collected (a fresh context per test: no shared storage). */
  async function watchPage(context: BrowserContext): Promise<Page> {
    const page = await context.newPage();
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      const text = message.text();
      // Chromium logs every 4xx answer as "Failed to load resource"; the tests cause some on purpose.
      if (message.type() === 'error' && !text.startsWith('Failed to load resource')) {
        problems.push(`console error: ${text}`);
      }
    });
    return page;
  }

  /** The limits come from /v1/playground/config: the hint shows the configured one once it loaded. */
  async function configLoaded(page: Page, limit: string): Promise<void> {
    await expect
      .poll(async () => page.getByTestId('config-state').getAttribute('data-state'), { timeout: 30_000 })
      .toBe('ok');
    await expect
      .poll(async () => page.locator('#file-image-hint').textContent(), { timeout: 30_000 })
      .toContain(`up to ${limit}`);
  }

  async function openPage(context: BrowserContext): Promise<Page> {
    const page = await watchPage(context);
    await page.goto(`${gateway.httpBase}/`);
    await expect
      .poll(async () => page.getByRole('heading', { level: 1 }).textContent(), { timeout: 30_000 })
      .toBe('ImageBind-LLM playground');
    await configLoaded(page, '2 MB');
    return page;
  }

  beforeAll(async () => {
    if (!existsSync(DIST)) {
      throw new Error(`no playground build at ${DIST}: run \`npx vite build services/gateway/web\` first`);
    }
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)`);
    }
    // The golden inputs must stay under the test's per-input limit, and a made-up file over it.
    expect(readFileSync(goldenPath('inputs', 'girl_bgm.wav')).length).toBeLessThan(MAX_INPUT_BYTES);
    temp = mkdtempSync(join(tmpdir(), 'playground-e2e-'));
    mkdirSync(SHOTS, { recursive: true });
    gateway = await startStandaloneGateway({ GATEWAY_MAX_INPUT_BYTES: String(MAX_INPUT_BYTES) }, 'gateway');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.proc.stop('SIGTERM', 20_000);
    if (temp !== undefined) rmSync(temp, { recursive: true, force: true });
    expect(problems).toEqual([]);
  });

  it('streams an answer about image + audio, stops it, and the server stops generating', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    try {
      const page = await openPage(context);
      await page.getByLabel('Image file').setInputFiles(goldenPath('inputs', 'girl.jpg'));
      await page.getByLabel('Audio file').setInputFiles(goldenPath('inputs', 'girl_bgm.wav'));
      await expect.poll(async () => page.locator('.input-card').count()).toBe(2);
      await expect(page.getByRole('img', { name: 'Preview of girl.jpg' }).isVisible()).resolves.toBe(true);

      // Weights with the keyboard: image stays at 1, audio goes down ten steps of 0.05 to 0.5.
      const imageWeight = page.getByRole('slider', { name: 'Weight of girl.jpg' });
      const audioWeight = page.getByRole('slider', { name: 'Weight of girl_bgm.wav' });
      await pressTimes(audioWeight, 'ArrowLeft', 10);
      expect(Number(await imageWeight.inputValue())).toBe(1);
      expect(Number(await audioWeight.inputValue())).toBeCloseTo(0.5, 10);
      // The longest answer, sampled (temperature > 0), so there is time to press Stop mid-stream.
      await pressTimes(page.getByRole('slider', { name: 'Max length (tokens)' }), 'End', 1);
      await pressTimes(page.getByRole('slider', { name: 'Temperature', exact: true }), 'ArrowRight', 20);
      expect(Number(await page.getByRole('slider', { name: 'Max length (tokens)' }).inputValue())).toBe(512);
      const temperature = Number(
        await page.getByRole('slider', { name: 'Temperature', exact: true }).inputValue(),
      );
      expect(temperature).toBeGreaterThan(0);
      await page.getByRole('textbox', { name: 'Instruction' }).fill(QUESTION);

      // The prompt takes this many positions, so a full answer would be CONTEXT_POSITIONS - prompt.
      // The probe's own outcome is counted once its stream closes: wait for that before measuring.
      const decoderRequests = async (): Promise<number> =>
        metric(gateway.httpBase, 'ibllm_inference_requests_total', DECODER);
      const requestsBefore = await decoderRequests();
      const probe = (await (
        await fetch(`${gateway.httpBase}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'imagebind-llm',
            max_tokens: 1,
            messages: [
              {
                role: 'user',
                content: [
                  { type: 'text', text: QUESTION },
                  { type: 'text', text: 'x', imagebind_modality: true },
                ],
              },
            ],
          }),
        })
      ).json()) as { usage: { prompt_tokens: number } };
      const fullAnswer = CONTEXT_POSITIONS - probe.usage.prompt_tokens;
      await expect.poll(decoderRequests, { timeout: 30_000 }).toBe(requestsBefore + 1);

      const cancelledBefore = await metric(gateway.httpBase, 'ibllm_inference_requests_total', {
        ...DECODER,
        outcome: 'cancelled',
      });
      const tokensBefore = await metric(gateway.httpBase, 'ibllm_generated_tokens_total', DECODER);
      const sent = page.waitForRequest(
        (r) => r.url().endsWith('/v1/chat/completions') && r.method() === 'POST',
      );
      await page.getByRole('button', { name: 'Generate' }).click();

      // What the page sent follows the controls.
      const body = (await sent).postDataJSON() as {
        max_tokens: number;
        temperature: number;
        stream: boolean;
        messages: { content: { type: string; weight?: number }[] }[];
      };
      expect(body).toMatchObject({ stream: true, max_tokens: 512, temperature });
      expect(body.messages[0]!.content.map((p) => [p.type, p.weight])).toEqual([
        ['text', undefined],
        ['image_url', 1],
        ['input_audio', 0.5],
      ]);

      // Tokens stream: the answer grows across several observations while still streaming.
      const lengths: number[] = [];
      while (lengths.length < 3) {
        const previous = lengths[lengths.length - 1] ?? 0;
        const grown = await until(
          'the answer to grow',
          async () => {
            const [text, p] = [await answerText(page), await phase(page)];
            if (p === 'done' || p === 'error') {
              throw new Error(
                `the run ended (${p}) after ${lengths.length} observations; answer: ${text.slice(0, 200)}`,
              );
            }
            return p === 'streaming' && text.length > previous ? text.length : undefined;
          },
          120_000,
        );
        lengths.push(grown);
      }
      await page.getByRole('button', { name: 'Stop', exact: true }).click();
      const after = await settled(page, ['stopped', 'done', 'error']);
      const shownTokens = Number(await page.locator('[data-metric="tokens"] dd').textContent());
      if (after === 'done') {
        throw new Error(
          `the answer finished (${shownTokens} tokens) before Stop landed; the stop test needs a longer answer or an earlier Stop`,
        );
      }
      expect(after).toBe('stopped');
      await expect(page.getByTestId('run-status').textContent()).resolves.toBe('Stopped.');
      expect(lengths[2]!).toBeGreaterThan(lengths[0]!);
      const answerAtStop = await answerText(page);
      expect(answerAtStop.length).toBeGreaterThanOrEqual(lengths[2]!);
      expect(shownTokens).toBeGreaterThan(0);
      expect(shownTokens).toBeLessThan(fullAnswer);

      // The server cancelled: the decoder records a cancelled request, holds no sequence, and
      // generated fewer tokens than a full answer (it would have gone on to `fullAnswer`).
      await expect
        .poll(
          async () =>
            (await metric(gateway.httpBase, 'ibllm_inference_requests_total', {
              ...DECODER,
              outcome: 'cancelled',
            })) - cancelledBefore,
          { timeout: 30_000 },
        )
        .toBe(1);
      await expect
        .poll(async () => metric(gateway.httpBase, 'ibllm_decoder_active_sequences', DECODER), {
          timeout: 30_000,
        })
        .toBe(0);
      const generated =
        (await metric(gateway.httpBase, 'ibllm_generated_tokens_total', DECODER)) - tokensBefore;
      expect(generated).toBeGreaterThanOrEqual(shownTokens);
      expect(
        generated,
        `the server generated ${generated} of a full ${fullAnswer}-token answer`,
      ).toBeLessThan(fullAnswer);
      // Nothing more arrives once stopped.
      expect(await answerText(page)).toBe(answerAtStop);

      await page.screenshot({ path: join(SHOTS, 'desktop.png'), fullPage: true });
      await page.setViewportSize(PHONE);
      // Phone width: one column, nothing wider than the screen.
      await expect
        .poll(async () => Number(await page.evaluate('document.documentElement.scrollWidth')))
        .toBe(PHONE.width);
      await page.evaluate("document.getElementById('answer-title').scrollIntoView()");
      await page.screenshot({ path: join(SHOTS, 'phone.png') });
      await page.screenshot({ path: join(SHOTS, 'phone-full.png'), fullPage: true });
    } finally {
      await context.close();
    }
  }, 300_000);

  it.each([
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ])(
    'keeps the answer and the errors in view after Generate (%s)',
    async (name, viewport) => {
      // Reduced motion: the page then scrolls at once, so the check needs no wait for an animation.
      const context = await browser.newContext({ viewport, reducedMotion: 'reduce' });
      try {
        const page = await openPage(context);
        /** Whether any part of the element is inside the viewport. */
        const inView = async (selector: string): Promise<boolean> =>
          page.evaluate<boolean>(
            `(() => { const r = document.querySelector(${JSON.stringify(selector)})?.getBoundingClientRect();` +
              ' return r !== undefined && r.height > 0 && r.bottom > 0 && r.top < window.innerHeight; })()',
          );
        const generate = page.getByRole('button', { name: 'Generate' });

        // No input yet: the message is where the inputs are, brought into view.
        await page.getByRole('textbox', { name: 'Instruction' }).fill('Describe the scene.');
        await generate.click();
        await expect
          .poll(async () => page.locator('#inputs-error').textContent())
          .toContain('Add at least one input');
        expect(await inView('#inputs-error')).toBe(true);

        await page.getByRole('textbox', { name: 'Text input' }).fill('A dog playing on the beach.');
        await page.getByRole('button', { name: 'Add text' }).click();
        await pressTimes(page.getByRole('slider', { name: 'Max length (tokens)' }), 'Home', 1);
        await pressTimes(page.getByRole('slider', { name: 'Max length (tokens)' }), 'ArrowRight', 7);
        await generate.scrollIntoViewIfNeeded();
        // Where the button is, the answer panel is out of sight (the point of the test).
        expect(await inView('#answer')).toBe(false);
        await generate.click();
        expect(await settled(page, ['done', 'error', 'stopped'])).toBe('done');
        expect(await inView('#answer')).toBe(true);
        await page.screenshot({ path: join(SHOTS, `after-generate-${name}.png`) });
      } finally {
        await context.close();
      }
    },
    180_000,
  );

  it('explains bad uploads and server errors, then still answers, compares and searches', async () => {
    const context = await browser.newContext({ viewport: PHONE });
    try {
      const page = await openPage(context);
      const cards = page.locator('.input-card');

      // A text file chosen as an image: refused in the page with what is accepted.
      const notImage = join(temp, 'girl.txt');
      writeFileSync(notImage, 'this is not an image\n');
      await page.getByLabel('Image file').setInputFiles(notImage);
      await expect
        .poll(async () => page.locator('#image-error').textContent())
        .toContain('girl.txt is not an image (accepted: image/jpeg, image/png');
      expect(await cards.count()).toBe(0);

      // A file over the server's per-input limit: refused in the page with both sizes.
      const big = join(temp, 'big.wav');
      writeFileSync(big, Buffer.alloc(MAX_INPUT_BYTES + 512 * 1024, 1));
      await page.getByLabel('Audio file').setInputFiles(big);
      await expect
        .poll(async () => page.locator('#audio-error').textContent())
        .toBe('big.wav is too large: 2.5 MB, the limit is 2 MB per input');
      expect(await cards.count()).toBe(0);

      // A corrupt file with an image type passes the page's checks; the server's 4xx is shown on
      // the input and in the answer panel.
      const broken = join(temp, 'broken.png');
      writeFileSync(broken, Buffer.from('definitely not a PNG file '.repeat(20)));
      await page.getByLabel('Image file').setInputFiles(broken);
      await expect.poll(async () => cards.count()).toBe(1);
      await expect.poll(async () => page.locator('#image-error').textContent()).toBe('');
      await page.getByRole('textbox', { name: 'Instruction' }).fill(QUESTION);
      await page.getByRole('button', { name: 'Generate' }).click();
      expect(await settled(page, ['error', 'done', 'stopped'])).toBe('error');
      const serverMessage = (await page.getByTestId('answer-error').textContent()) ?? '';
      expect(serverMessage).toMatch(/image/i);
      await expect
        .poll(async () => cards.first().locator('.field-error').textContent())
        .toMatch(/^broken\.png: /);

      // The page keeps working: remove the broken file, add the real image, answer.
      await page.getByRole('button', { name: 'Remove broken.png' }).click();
      await expect.poll(async () => cards.count()).toBe(0);
      await page.getByLabel('Image file').setInputFiles(goldenPath('inputs', 'girl.jpg'));
      await expect.poll(async () => cards.count()).toBe(1);
      await page.getByRole('button', { name: 'Generate' }).click();
      expect(await settled(page, ['done', 'error', 'stopped'])).toBe('done');
      expect((await answerText(page)).length).toBeGreaterThan(0);
      expect(await page.getByTestId('answer-error').textContent()).toBe('');

      // Embeddings of two inputs: a 2×2 cosine matrix with 1.000 on the diagonal.
      await page.getByRole('textbox', { name: 'Text input' }).fill('A girl listening to music at sunset.');
      await page.getByRole('button', { name: 'Add text' }).click();
      await expect.poll(async () => cards.count()).toBe(2);
      await page.getByRole('button', { name: 'Compare inputs' }).click();
      const matrix = page.getByTestId('similarity-matrix');
      await matrix.waitFor({ timeout: 60_000 });
      const rows = matrix.locator('tbody tr');
      expect(await rows.count()).toBe(2);
      for (let i = 0; i < 2; i++) {
        const cells = await rows.nth(i).locator('td').allTextContents();
        expect(cells).toHaveLength(2);
        expect(cells[i]).toBe('1.000');
        expect(Math.abs(Number(cells[1 - i]))).toBeLessThanOrEqual(1);
      }
      expect(await rows.nth(0).locator('th').textContent()).toBe('1. Image: girl.jpg');

      // Cross-modal search with the same inputs: ranked hits with ids and scores.
      await page.getByRole('spinbutton', { name: 'Results (k)' }).fill('3');
      await page.getByRole('button', { name: 'Search' }).click();
      const hits = page.getByTestId('search-results').locator('tbody tr');
      await expect.poll(async () => hits.count(), { timeout: 60_000 }).toBe(3);
      const first = await hits.first().locator('td').allTextContents();
      expect(first[0]).toBe('1');
      expect(first[1]!.length).toBeGreaterThan(0);
      expect(Number.isFinite(Number(first[2]))).toBe(true);
      await page.screenshot({ path: join(SHOTS, 'phone-embeddings-search.png'), fullPage: true });

      // Point clouds: a text format gets an interactive 3D preview (keys rotate it); a binary one
      // gets none but is still sent, and the server reads both.
      const helix = join(temp, 'helix.xyz');
      const turns = Array.from(
        { length: 1200 },
        (_, i) => `${Math.cos(i / 40)} ${Math.sin(i / 40)} ${i / 600 - 1}`,
      );
      writeFileSync(helix, `${turns.join('\n')}\n`);
      await page
        .getByLabel('Point cloud file')
        .setInputFiles([helix, goldenPath('inputs', 'airplane_perm.npy')]);
      const preview = page.getByRole('img', { name: /^3D preview of helix\.xyz: 1200 points/ });
      await preview.waitFor({ timeout: 30_000 });
      const angle = await preview.getAttribute('aria-label');
      await preview.press('ArrowRight');
      await expect.poll(async () => preview.getAttribute('aria-label')).not.toBe(angle);
      await expect
        .poll(async () => page.locator('.input-card', { hasText: 'airplane_perm.npy' }).textContent())
        .toContain('No preview for this format');
      await page.getByRole('button', { name: 'Compare inputs' }).click();
      await expect.poll(async () => rows.count(), { timeout: 60_000 }).toBe(4);
      for (let i = 0; i < 4; i++)
        expect((await rows.nth(i).locator('td').allTextContents())[i]).toBe('1.000');
    } finally {
      await context.close();
    }
  }, 300_000);
  it('records from the microphone as WebM, plays it back and embeds it on the server', async () => {
    const context = await browser.newContext({ viewport: DESKTOP, permissions: ['microphone'] });
    try {
      const page = await openPage(context);
      await page.getByRole('button', { name: 'Record from microphone' }).click();
      await expect
        .poll(async () => page.locator('.recorder [role="status"]').textContent(), { timeout: 30_000 })
        .toMatch(/^Recording… 0:0[1-9]/);
      await page.getByRole('button', { name: 'Stop recording' }).click();
      const card = page.locator('.input-card', { hasText: 'Recording 1' });
      await card.waitFor({ timeout: 30_000 });
      expect(await card.getByRole('slider', { name: /^Weight of Recording 1/ }).inputValue()).toBe('1');
      expect(await page.locator('#audio-error').textContent()).toBe('');
      // Playback preview of the recording itself (a blob: URL, allowed by the page's media-src).
      expect(await card.locator('audio[controls]').getAttribute('src')).toMatch(/^blob:/);

      const sent = page.waitForRequest((r) => r.url().endsWith('/v1/embeddings'));
      await page.getByRole('textbox', { name: 'Text input' }).fill('A short beep.');
      await page.getByRole('button', { name: 'Add text' }).click();
      await page.getByRole('button', { name: 'Compare inputs' }).click();
      const parts = (
        (await sent).postDataJSON() as {
          imagebind_inputs: { type: string; input_audio?: { format: string } }[];
        }
      ).imagebind_inputs;
      expect(parts[0]).toMatchObject({ type: 'input_audio', input_audio: { format: 'webm' } });
      const rows = page.getByTestId('similarity-matrix').locator('tbody tr');
      await expect.poll(async () => rows.count(), { timeout: 60_000 }).toBe(2);
      expect((await rows.nth(0).locator('td').allTextContents())[0]).toBe('1.000');
      expect(await page.getByTestId('embeddings-error').textContent()).toBe('');
    } finally {
      await context.close();
    }
  }, 300_000);

  describe('with API keys configured', () => {
    const key = `pg-${randomBytes(16).toString('hex')}`;
    let keyed: ServiceProcess;

    beforeAll(async () => {
      keyed = await startStandaloneGateway({ GATEWAY_API_KEYS: `playground:${key}` }, 'gateway-keyed');
    }, 180_000);

    afterAll(async () => {
      await keyed?.proc.stop('SIGTERM', 20_000);
    });

    it('asks for the key on 401, retries with it, and keeps it for the tab only', async () => {
      const context = await browser.newContext({ viewport: DESKTOP });
      try {
        const page = await watchPage(context);
        await page.goto(`${keyed.httpBase}/`);
        const prompt = page.getByRole('region', { name: 'API key needed' });
        const keyField = page.getByLabel('API key', { exact: true });
        await expect.poll(async () => prompt.textContent(), { timeout: 30_000 }).toContain('missing API key');
        await page.screenshot({ path: join(SHOTS, 'api-key.png') });

        // A wrong key is refused by the server and asked for again, with the server's reason.
        await keyField.fill('wrong-key-0123456789abcdef');
        await page.getByRole('button', { name: 'Use this key' }).click();
        await expect.poll(async () => prompt.textContent(), { timeout: 30_000 }).toContain('invalid API key');

        // The right key: the refused call (the config) is retried and the page works.
        await keyField.fill(key);
        await page.getByRole('button', { name: 'Use this key' }).click();
        await configLoaded(page, '32 MB');
        expect(await prompt.count()).toBe(0);
        expect(await page.evaluate("sessionStorage.getItem('ibllm.playground.apiKey')")).toBe(key);

        await page.getByRole('textbox', { name: 'Text input' }).fill('A dog playing on the beach.');
        await page.getByRole('button', { name: 'Add text' }).click();
        await page.getByRole('textbox', { name: 'Instruction' }).fill('Describe the scene.');
        await pressTimes(page.getByRole('slider', { name: 'Max length (tokens)' }), 'Home', 1);
        await pressTimes(page.getByRole('slider', { name: 'Max length (tokens)' }), 'ArrowRight', 15);
        await page.getByRole('button', { name: 'Generate' }).click();
        expect(await settled(page, ['done', 'error', 'stopped'])).toBe('done');
        const tokens = Number(await page.locator('[data-metric="tokens"] dd').textContent());
        expect(tokens).toBeGreaterThan(0);
        expect(tokens).toBeLessThanOrEqual(16);

        // A reload in the same tab keeps the key; a new tab (context) has none and is asked again.
        await page.reload();
        await configLoaded(page, '32 MB');
        expect(await prompt.count()).toBe(0);
        const other = await watchPage(await browser.newContext({ viewport: PHONE }));
        await other.goto(`${keyed.httpBase}/`);
        await expect
          .poll(async () => other.getByRole('region', { name: 'API key needed' }).count(), {
            timeout: 30_000,
          })
          .toBe(1);
        await other.context().close();
      } finally {
        await context.close();
      }
    }, 300_000);
  });
});
