import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { PLAYGROUND_SECURITY_HEADERS, type StaticSite } from './static-site';
import { PLAYGROUND_SITE } from '../tokens';

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Playground not available</title>
<p>The web playground is not served by this gateway: it was not built (run <code>npm run build</code>) or
GATEWAY_PLAYGROUND=false. The API under <code>/v1</code> works as usual.</p></html>`;

/**
 * The web playground (issue #8): the vite build under `/`, from memory. The files are public (they
 * hold no data); every API call the page makes goes through the same keys and rate limits as any
 * other client.
 */
@Controller()
export class PlaygroundController {
  constructor(@Inject(PLAYGROUND_SITE) private readonly site: StaticSite | null) {}

  @Get()
  index(@Res() res: Response): void {
    this.send('/', res);
  }

  @Get('index.html')
  indexFile(@Res() res: Response): void {
    this.send('/index.html', res);
  }

  @Get('favicon.svg')
  favicon(@Res() res: Response): void {
    this.send('/favicon.svg', res);
  }

  @Get('assets/*path')
  asset(@Req() req: Request, @Res() res: Response): void {
    this.send(req.path, res);
  }

  private send(path: string, res: Response): void {
    res.set(PLAYGROUND_SECURITY_HEADERS);
    if (this.site === null) {
      res.status(404).type('html').send(NOT_BUILT);
      return;
    }
    const file = this.site.get(path);
    if (file === undefined) {
      res.status(404).type('text/plain').send(`${path} is not part of the playground\n`);
      return;
    }
    res.set({
      'content-type': file.contentType,
      etag: file.etag,
      'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    // Compared here: Express' own freshness check answered 200 to a matching If-None-Match sent
    // by fetch (playground-http.int-spec.ts), so it is not relied on.
    if (res.req.headers['if-none-match'] === file.etag) {
      res.status(304).end();
      return;
    }
    res.status(200).send(file.body);
  }
}
