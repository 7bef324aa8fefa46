// Commands that run the peer itself rather than talk to its API. Their modules load lazily: the other commands
// must not pay for libp2p and Helia.
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { listenOptions, listenSettings, PEER_LISTEN_DEFAULTS, type ListenFlags } from '../listen.js'
import { Session, type CliIO } from '../session.js'

interface InitFlags extends ListenFlags {
  path?: string
  peername?: string
  clusterConfig?: string
  force?: boolean
}

/** CAIRN_API addresses the CLI's client; config would reject it as an unknown CAIRN_<SECTION>_<KEY> override. */
function configEnv (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { CAIRN_API: _api, ...rest } = env
  return rest
}

export function registerNode (program: Command, io: CliIO): void {
  const init = program.command('init')
    .description('create a peer (identity and peer config) in its data directory')
    .option('--path <dir>', 'peer data directory (default: $CAIRN_PATH or ~/.cairn)')
    .option('--peername <name>', 'human-readable name of the peer')
    .option('--cluster-config <file>', 'cluster.config.json of the cluster to join (default: a new one-peer cluster)')
  listenOptions(init, PEER_LISTEN_DEFAULTS)
    .option('--force', 'overwrite an existing peer')
    .action(async (o: InitFlags, cmd: Command) => {
      const s = new Session(io, cmd)
      const { initPeer, defaultPeerPath } = await import('../../config/index.js')
      const path = o.path != null ? resolve(o.path) : defaultPeerPath(io.env)
      const config = await initPeer(path, {
        peername: o.peername,
        cluster: o.clusterConfig != null ? resolve(o.clusterConfig) : undefined,
        ...listenSettings(o),
        force: o.force,
        env: configEnv(io.env)
      })
      s.one({ id: config.identity.peerId.toString(), path: config.path }, r => `initialized peer ${r.id} in ${r.path}`)
    })

  program.command('daemon')
    .description('run the peer until SIGINT or SIGTERM')
    .option('--path <dir>', 'peer data directory (default: $CAIRN_PATH or ~/.cairn)')
    .option('--init', 'create the peer first if the directory has none')
    .action(async (o: { path?: string, init?: boolean }) => {
      const [{ runDaemon }, { defaultPeerPath }] = await Promise.all([import('../../daemon.js'), import('../../config/index.js')])
      // A rejection nothing handled is a bug to log, not a reason to stop serving (on a full disk such a stop
      // lost the peer, and the log with it when it was on that disk).
      const onRejection = (err: unknown): void => {
        io.err(`unhandled rejection (a bug; the daemon keeps running): ${err instanceof Error ? err.stack : String(err)}\n`)
      }
      process.on('unhandledRejection', onRejection)
      try {
        await runDaemon({ path: o.path != null ? resolve(o.path) : defaultPeerPath(io.env), init: o.init === true, env: io.env, report: line => { io.out(`${line}\n`) } })
      } finally {
        process.off('unhandledRejection', onRejection)
        // once stopped (or failed to start), nothing a library left behind (a timer, a socket) keeps the process
        setTimeout(() => {
          io.err('the peer has stopped but the process was still running 5 s later: exiting\n')
          process.exit()
        }, 5000).unref()
      }
    })
}
