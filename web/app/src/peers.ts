// The tabs of one browser profile share one outbox (outbox.ts): a Web Lock
// lets one flush run at a time across them, and a BroadcastChannel tells the
// others when the stored outbox changed. Where either is missing (an old
// browser) the tab falls back to LocalPeers: correct for a single tab.
import { LocalPeers, type OutboxPeers } from './outbox'

const LOCK = 'taskqueue-outbox-flush'
const CHANNEL = 'taskqueue-outbox'

export class BrowserPeers implements OutboxPeers {
  private readonly channel: BroadcastChannel

  constructor() {
    this.channel = new BroadcastChannel(CHANNEL)
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return navigator.locks.request(LOCK, () => fn()) as Promise<T>
  }

  announce(): void {
    this.channel.postMessage('changed')
  }

  listen(listener: () => void): () => void {
    const on = () => listener()
    this.channel.addEventListener('message', on)
    return () => this.channel.removeEventListener('message', on)
  }

  static available(): boolean {
    return typeof BroadcastChannel !== 'undefined' && typeof navigator !== 'undefined' && !!navigator.locks
  }

  /** The peers this browser supports. */
  static make(): OutboxPeers {
    return BrowserPeers.available() ? new BrowserPeers() : new LocalPeers()
  }
}
