// Length-prefixed framing over libp2p 3 message streams, with backpressure.
import * as lp from 'it-length-prefixed'
import { FrameTooLongError } from '../errors.js'
import type { AbortOptions } from '../components.js'
import type { Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Sends one length-prefixed frame, waiting for the stream to drain when its buffer is full. */
export async function sendFrame (stream: Stream, frame: Uint8Array, options: AbortOptions = {}): Promise<void> {
  if (!stream.send(lp.encode.single(frame))) {
    await stream.onDrain(options)
  }
}

/**
 * A frame length decoder that checks the length against a limit read when each frame starts (a protocol whose
 * frames differ in size by phase), so an oversized frame is refused from its length prefix, before any of it is
 * buffered.
 */
function limitedLength (limit: () => number): lp.LengthDecoderFunction {
  const decode = (buf: Uint8ArrayList): number => {
    let n = 0
    let mul = 1
    for (let i = 0; i < 8; i++) {
      // a RangeError tells the decoder to wait for more bytes
      if (i >= buf.byteLength) throw new RangeError('frame length not complete yet')
      const b = buf.get(i)
      n += (b & 0x7f) * mul
      if ((b & 0x80) === 0) {
        decode.bytes = i + 1
        const max = limit()
        if (n > max) throw new FrameTooLongError(`a frame of ${n} bytes was announced; at most ${max} are allowed here`)
        return n
      }
      mul *= 128
    }
    throw new FrameTooLongError('a frame length of more than 8 bytes was announced')
  }
  decode.bytes = 0
  return decode
}

/**
 * Reads length-prefixed frames until the remote closes its write side. `maxDataLength` may be a function: it is
 * asked as each frame starts.
 */
export async function * readFrames (stream: Stream, options: AbortOptions & { maxDataLength?: number | (() => number) } = {}): AsyncGenerator<Uint8Array> {
  const onAbort = (): void => { stream.abort(options.signal?.reason ?? new Error('aborted')) }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  const max = options.maxDataLength ?? 8 * 1024 * 1024
  const limits = typeof max === 'number' ? { maxDataLength: max } : { maxDataLength: Number.MAX_SAFE_INTEGER, lengthDecoder: limitedLength(max) }
  try {
    options.signal?.throwIfAborted()
    for await (const frame of lp.decode(stream, limits)) {
      yield frame.subarray()
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
  }
}

/** Reads exactly one frame (a request), or throws if the stream ends first. */
export async function readOneFrame (stream: Stream, options: AbortOptions & { maxDataLength?: number } = {}): Promise<Uint8Array> {
  // eslint-disable-next-line no-unreachable-loop -- the first frame is the request
  for await (const frame of readFrames(stream, options)) return frame
  throw new Error('stream ended before a request was received')
}
