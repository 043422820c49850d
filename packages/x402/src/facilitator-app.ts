import { errorHandler, type Logger, notFoundHandler, validate } from '@agentstack/core';
import type { x402Facilitator } from '@x402/core/facilitator';
import type { PaymentPayload, PaymentRequirements } from '@x402/core/types';
import { Hono } from 'hono';
import { z } from 'zod';

const requirements = z.looseObject({
  scheme: z.string(),
  network: z.string().regex(/^[a-z0-9-]+:[A-Za-z0-9-]+$/, 'expected a CAIP-2 network id'),
  asset: z.string(),
  amount: z.string().regex(/^\d+$/, 'expected atomic units as a decimal integer string'),
  payTo: z.string(),
  maxTimeoutSeconds: z.number().int().positive(),
  extra: z.record(z.string(), z.unknown()).default({}),
});

const facilitatorRequest = z.object({
  x402Version: z.number().int(),
  paymentPayload: z.looseObject({
    x402Version: z.number().int(),
    accepted: requirements.optional(),
    payload: z.record(z.string(), z.unknown()),
  }),
  paymentRequirements: requirements,
});

/**
 * The facilitator as an HTTP service (`POST /verify`, `POST /settle`, `GET /supported`), in the wire shape
 * the official `HTTPFacilitatorClient` speaks. A request it cannot serve (malformed, unknown network) is a
 * 400 with a reason, never a crash.
 */
export function facilitatorApp(facilitator: x402Facilitator, log?: Logger): Hono {
  const app = new Hono();
  app.onError(errorHandler(log));
  app.notFound(notFoundHandler);

  app.get('/health', (c) => c.json({ ok: true }));
  app.get('/supported', (c) => c.json(facilitator.getSupported()));

  app.post('/verify', validate('json', facilitatorRequest), async (c) => {
    const body = c.req.valid('json');
    try {
      const result = await facilitator.verify(
        body.paymentPayload as unknown as PaymentPayload,
        body.paymentRequirements as PaymentRequirements,
      );
      return c.json(result);
    } catch (err) {
      return c.json({ isValid: false, invalidReason: 'unsupported_or_invalid', invalidMessage: message(err) }, 400);
    }
  });

  app.post('/settle', validate('json', facilitatorRequest), async (c) => {
    const body = c.req.valid('json');
    try {
      const result = await facilitator.settle(
        body.paymentPayload as unknown as PaymentPayload,
        body.paymentRequirements as PaymentRequirements,
      );
      return c.json(result);
    } catch (err) {
      return c.json(
        {
          success: false,
          errorReason: 'unsupported_or_invalid',
          errorMessage: message(err),
          transaction: '',
          network: body.paymentRequirements.network,
        },
        400,
      );
    }
  });
  return app;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 300) : 'facilitator error';
}
