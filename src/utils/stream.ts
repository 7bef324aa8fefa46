// Length-prefixed framing over libp2p 3 message streams, with backpressure.
import * as lp from 'it-length-prefixed'
import type { AbortOptions } from '../components.js'
import type { Stream } from '@libp2p/interface'

/** Sends one length-prefixed frame, waiting for the stream to drain when its buffer is full. */
export async function sendFrame (stream: Stream, frame: Uint8Array, options: AbortOptions = {}): Promise<void> {
  if (!stream.send(lp.encode.single(frame))) {
    await stream.onDrain(options)
  }
}

/** Reads length-prefixed frames until the remote closes its write side. */
export async function * readFrames (stream: Stream, options: AbortOptions & { maxDataLength?: number } = {}): AsyncGenerator<Uint8Array> {
  const onAbort = (): void => { stream.abort(options.signal?.reason ?? new Error('aborted')) }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    options.signal?.throwIfAborted()
    for await (const frame of lp.decode(stream, { maxDataLength: options.maxDataLength ?? 8 * 1024 * 1024 })) {
      yield frame.subarray()
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
  }
}

/** Reads exactly one frame (a request), or throws if the stream ends first. */
export async function readOneFrame (stream: Stream, options: AbortOptions & { maxDataLength?: number } = {}): Promise<Uint8Array> {
  for await (const frame of readFrames(stream, options)) return frame
  throw new Error('stream ended before a request was received')
}
