// The benchmarks' summary statistics: `add` and `bitswap` report medians over rounds, so a wrong median is a
// wrong figure in the README.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { median, quantile, spread } from '../../bench/lib.js'

describe('bench median', () => {
  it('takes the middle value of an odd count, whatever the order', () => {
    assert.equal(median([5.2, 0.7, 3.1]), 3.1)
    assert.equal(median([4]), 4)
  })

  it('takes the mean of the two middle values of an even count', () => {
    assert.equal(median([4, 1, 3, 2]), 2.5)
  })

  it('is NaN for no values, and leaves its input unsorted', () => {
    assert.ok(Number.isNaN(median([])))
    const values = [3, 1, 2]
    median(values)
    assert.deepEqual(values, [3, 1, 2])
  })

  it('agrees with quantile(0.5) on an odd count', () => {
    const values = [9, 2, 7, 4, 5]
    assert.equal(median(values), quantile([...values].sort((a, b) => a - b), 0.5))
  })
})

describe('bench spread', () => {
  it('prints the lowest and highest value of the rounds, whatever their order', () => {
    assert.equal(spread([0.47, 0.33, 0.5], 2), '0.33-0.50')
    assert.equal(spread([141.2], 1), '141.2-141.2')
  })
})
