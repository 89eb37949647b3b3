# ruff: noqa: E501  (log statements are quoted whole, as their sources write them)
"""Labelled log sets in the wordings of real software, for bench/eval_templates.py.

Each set is one system's log statements as its source writes them (OpenSSH's
``auth.c``/``sshd.c`` strings, Hadoop HDFS's ``DataNode``/``FSNamesystem``
``LOG.info`` calls, Spark's ``Executor``/``BlockManager``, ZooKeeper's
``QuorumCnxManager``/``FastLeaderElection``, OpenStack nova's compute manager,
Linux PAM/ftpd/kernel lines, Apache httpd with mod_jk, a Windows-style
proxy client), filled with values of the kinds real logs carry: user and host
names that are words, sizes with units, durations like ``<1 sec``, ids with
and without digits. Near-misses that are different causes are kept (``VM
Started``/``VM Paused``, ``Found child``/``Can't find child``). The label of
a message is its format string. No public labelled corpus was used or read.

    python bench/logs/generate.py            # writes bench/logs/<system>.jsonl
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
SIZE = 2000

USERS = [
    "root",
    "admin",
    "test",
    "oracle",
    "postgres",
    "guest",
    "ftpuser",
    "webmaster",
    "nagios",
    "git",
    "ubuntu",
    "pi",
    "user",
    "support",
    "mysql",
    "deploy",
    "backup",
    "alice",
    "bob",
    "zabbix",
    "tomcat",
    "jenkins",
    "hadoop",
    "info",
    "sales",
]
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]
DOMAINS = [
    "example.com",
    "cuhk.edu.hk",
    "google.com",
    "qq.com",
    "baidu.com",
    "akamai.net",
    "office365.com",
]


def _host(r: random.Random) -> str:
    return f"{r.choice(['www', 'api', 'mail', 'cdn', 'proxy', 'img', 'ssl'])}.{r.choice(DOMAINS)}"


def _ip(r: random.Random) -> str:
    return ".".join(str(r.randint(1, 254)) for _ in range(4))


FILLERS: dict[str, Callable[[random.Random], str]] = {
    "ip": _ip,
    "port": lambda r: str(r.randint(1024, 65535)),
    "user": lambda r: (
        r.choice(USERS) if r.random() < 0.8 else f"{r.choice(USERS)}{r.randint(1, 99)}"
    ),
    "host": _host,
    "node": lambda r: f"node-{r.randint(1, 300)}",
    "num": lambda r: str(r.randint(0, 100000)),
    "small": lambda r: str(r.randint(0, 9)),
    "float": lambda r: f"{r.random() * 100:.{r.randint(1, 6)}f}",
    "hex": lambda r: f"0x{r.getrandbits(32):x}",
    "blk": lambda r: f"blk_{r.choice(['-', ''])}{r.getrandbits(62)}",
    "uuid": lambda r: "-".join(f"{r.getrandbits(b * 4):0{b}x}" for b in (8, 4, 4, 4, 12)),
    "req": lambda r: f"req-{r.getrandbits(32):08x}-{r.getrandbits(16):04x}",
    "path": lambda r: (
        "/" + "/".join(r.choice([*WORDS, "user", "tmp", "data"]) for _ in range(r.randint(2, 5)))
    ),
    "size": lambda r: r.choice(
        [f"{r.randint(1, 999)} bytes", f"{r.random() * 900:.2f} KB", f"{r.random() * 9:.1f} MB"]
    ),
    "life": lambda r: r.choice(
        [
            "<1 sec",
            f"00:{r.randint(0, 59):02d}",
            f"{r.randint(0, 3):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
        ]
    ),
    "ms": lambda r: str(r.randint(1, 9000)),
    "word": lambda r: r.choice(WORDS),
    "date": lambda r: (
        f"{r.choice(['Sun', 'Mon', 'Tue'])} {r.choice(['Jun', 'Jul'])} {r.randint(1, 28)} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d} 2005"
    ),
    "class": lambda r: r.choice(
        ["java.io.IOException", "java.net.SocketTimeoutException", "java.lang.InterruptedException"]
    ),
    "task": lambda r: (
        f"attempt_{r.randint(10**12, 10**13)}_{r.randint(1, 9):04d}_m_{r.randint(0, 99):06d}_{r.randint(0, 3)}"
    ),
    "rdd": lambda r: f"rdd_{r.randint(0, 40)}_{r.randint(0, 40)}",
    "state": lambda r: r.choice(["LOOKING", "FOLLOWING", "LEADING"]),
    "sid": lambda r: f"0x{r.getrandbits(40):x}",
    "pid": lambda r: str(r.randint(100, 32000)),
}

SETS: dict[str, list[str]] = {
    "sshd": [
        "Invalid user {user} from {ip}",
        "input_userauth_request: invalid user {user} [preauth]",
        "Failed password for invalid user {user} from {ip} port {port} ssh2",
        "Failed password for {user} from {ip} port {port} ssh2",
        "Accepted password for {user} from {ip} port {port} ssh2",
        "Accepted publickey for {user} from {ip} port {port} ssh2",
        "Connection closed by {ip} [preauth]",
        "Received disconnect from {ip}: 11: Bye Bye [preauth]",
        "Disconnecting: Too many authentication failures for {user} [preauth]",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}",
        "pam_unix(sshd:auth): check pass; user unknown",
        "PAM {small} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
        "PAM service(sshd) ignoring max retries; {small} > 3",
        "reverse mapping checking getaddrinfo for {host} [{ip}] failed - POSSIBLE BREAK-IN ATTEMPT!",
        "Address {ip} maps to {host}, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
        "error: Received disconnect from {ip}: 3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
        "fatal: Read from socket failed: Connection reset by peer [preauth]",
        "Did not receive identification string from {ip}",
        "pam_unix(sshd:session): session opened for user {user} by (uid=0)",
        "pam_unix(sshd:session): session closed for user {user}",
        "Server listening on {ip} port {port}.",
        "Received signal 15; terminating.",
    ],
    "proxy": [
        "{host}:{port} open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
        "{host}:{port} open through proxy socks.cse.cuhk.edu.hk:5070 SOCKS5",
        "{host}:{port} close, {num} bytes sent, {num} bytes received, lifetime {life}",
        "{host}:{port} close, {num} bytes ({size}) sent, {num} bytes ({size}) received, lifetime {life}",
        "{host}:{port} error : Could not connect to proxy proxy.cse.cuhk.edu.hk:5070 - connection attempt failed with error {num}",
        "{host}:{port} error : Could not connect through proxy proxy.cse.cuhk.edu.hk:5070 - Proxy server cannot establish a connection with the target, status code {num}",
        "{host}:{port} error : A connection request was canceled before the completion.",
        "{host}:{port} error : Could not resolve {host}",
        "open through proxy {host}:{port} HTTPS",
        "Name resolution for {host} timed out",
    ],
    "hdfs": [
        "Receiving block {blk} src: /{ip}:{port} dest: /{ip}:50010",
        "Received block {blk} of size {num} from /{ip}",
        "PacketResponder {small} for block {blk} terminating",
        "BLOCK* NameSystem.addStoredBlock: blockMap updated: {ip}:50010 is added to {blk} size {num}",
        "BLOCK* NameSystem.allocateBlock: /user/root/randtxt/_temporary/_task_{num}_r_{num}_0/part-{num}. {blk}",
        "Verification succeeded for {blk}",
        "Deleting block {blk} file /mnt/hadoop/dfs/data/current/subdir{small}/{blk}",
        "BLOCK* NameSystem.delete: {blk} is added to invalidSet of {ip}:50010",
        "BLOCK* ask {ip}:50010 to replicate {blk} to datanode(s) {ip}:50010",
        "{ip}:50010:Transmitted block {blk} to /{ip}:50010",
        "{ip}:50010:Got exception while serving {blk} to /{ip}:",
        "Exception in receiveBlock for block {blk} {class}: Connection reset by peer",
        "writeBlock {blk} received exception {class}: Could not read from stream",
        "Unexpected error trying to delete block {blk}. BlockInfo not found in volumeMap.",
        "BLOCK* NameSystem.addStoredBlock: Redundant addStoredBlock request received for {blk} on {ip}:50010 size {num}",
    ],
    "spark": [
        "Running task {float} in stage {float} (TID {num})",
        "Finished task {float} in stage {float} (TID {num}). {num} bytes result sent to driver",
        "Got assigned task {num}",
        "Partition {rdd} not found, computing it",
        "Found block {rdd} locally",
        "Block {rdd} stored as values in memory (estimated size {size}, free {size})",
        "Block broadcast_{num}_piece0 stored as bytes in memory (estimated size {size}, free {size})",
        "Started reading broadcast variable {num}",
        "Reading broadcast variable {num} took {ms} ms",
        "Input split: hdfs://{host}:9000/pjhe/test/{small}/part-{num}:{num}+{num}",
        "Times: total = {ms}, boot = {ms}, init = {ms}, finish = {ms}",
        "Changing view acls to: {user}",
        "Changing modify acls to: {user}",
        "SecurityManager: authentication disabled; ui acls disabled; users with view permissions: Set({user}); users with modify permissions: Set({user})",
        "Registered signal handlers for [TERM, HUP, INT]",
        "Successfully started service 'sparkExecutorActorSystem' on port {port}.",
        "Connecting to driver: spark://CoarseGrainedScheduler@{ip}:{port}",
        "Driver commanded a shutdown",
        "MemoryStore started with capacity {size}",
    ],
    "zookeeper": [
        "Received connection request /{ip}:{port}",
        "Notification: {small} (n.leader), {sid} (n.zxid), {small} (n.round), {state} (n.state), {small} (n.sid), 0x{small} (n.peerEPoch), {state} (my state)",
        "Accepted socket connection from /{ip}:{port}",
        "Client attempting to establish new session at /{ip}:{port}",
        "Established session {sid} with negotiated timeout {num} for client /{ip}:{port}",
        "Closed socket connection for client /{ip}:{port} which had sessionid {sid}",
        "Closed socket connection for client /{ip}:{port} (no session established for client)",
        "Expiring session {sid}, timeout of {num}ms exceeded",
        "Processed session termination for sessionid: {sid}",
        "caught end of stream exception",
        "Connection broken for id {num}, my id = {small}, error =",
        "Interrupting SendWorker",
        "Send worker leaving thread",
        "Have smaller server identifier, so dropping the connection: ({small}, {small})",
        "Cannot open channel to {small} at election address /{ip}:3888",
        "Notification time out: {num}",
        "FOLLOWING - LEADER ELECTION TOOK - {num}",
        "LEADING - LEADER ELECTION TOOK - {num}",
    ],
    "nova": [
        "[instance: {uuid}] VM Started (Lifecycle Event)",
        "[instance: {uuid}] VM Paused (Lifecycle Event)",
        "[instance: {uuid}] VM Resumed (Lifecycle Event)",
        "[instance: {uuid}] VM Stopped (Lifecycle Event)",
        "[instance: {uuid}] Took {float} seconds to spawn the instance on the hypervisor.",
        "[instance: {uuid}] Took {float} seconds to build instance.",
        "[instance: {uuid}] Took {float} seconds to deallocate network for instance.",
        "[instance: {uuid}] Took {float} seconds to destroy the instance on the hypervisor.",
        "[instance: {uuid}] Terminating instance",
        "[instance: {uuid}] Attempting claim: memory {num} MB, disk {num} GB, vcpus {small} CPU",
        "[instance: {uuid}] Claim successful",
        "[instance: {uuid}] During sync_power_state the instance has a pending task (spawning). Skip.",
        '{ip} "GET /v2/{hex}/servers/detail HTTP/1.1" status: 200 len: {num} time: {float}',
        '{ip} "POST /v2/{hex}/os-server-external-events HTTP/1.1" status: 200 len: {num} time: {float}',
        '{ip} "DELETE /v2/{hex}/servers/{uuid} HTTP/1.1" status: 204 len: {num} time: {float}',
        "Compute_service record updated for {node}:{node}",
        "Total usable vcpus: {small}, total allocated vcpus: {small}",
        "Final resource view: name={node} phys_ram={num}MB used_ram={num}MB phys_disk={num}GB used_disk={num}GB total_vcpus={small} used_vcpus={small} pci_stats=[]",
        "Active base files: {path}",
        "image {uuid} at ({path}): checking",
        "Removable base files: {path}",
    ],
    "linux": [
        "session opened for user {user} by (uid=0)",
        "session closed for user {user}",
        "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost={host}",
        "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost={host}  user={user}",
        "check pass; user unknown",
        "connection from {ip} ({host}) at {date}",
        "ALERT exited abnormally with [{small}]",
        "Kerberos authentication failed",
        "couldn't add command channel to log",
        "klogind: Authentication failed from {ip} ({host}): Permission denied",
        "cupsd shutdown succeeded",
        "cupsd startup succeeded",
        "syslogd 1.4.1: restart.",
        "Out of Memory: Killed process {pid} ({word}).",
        "audit(1122475266.4294965305:0): initialized",
        "warning: can't get client address: No such file or directory",
        "gdm(pam_unix)[{pid}]: session opened for user {user} by (uid=0)",
    ],
    "apache": [
        "jk2_init() Found child {pid} in scoreboard slot {small}",
        "jk2_init() Can't find child {pid} in scoreboard",
        "workerEnv.init() ok /etc/httpd/conf/workers2.properties",
        "mod_jk child workerEnv in error state {small}",
        "[client {ip}] Directory index forbidden by rule: {path}/",
        "[client {ip}] File does not exist: {path}",
        "mod_jk child init 1 -2",
        "child process {pid} still did not exit, sending a SIGTERM",
        "config.update(): Can't create channel.jni:jni",
        "Digest: generating secret for digest authentication ...",
        "Digest: done",
        "[client {ip}] script not found or unable to stat: {path}",
        "caught SIGTERM, shutting down",
    ],
    "android": [
        'acquire lock={num}, flags=0x1, tag="{word}", name=com.android.systemui, ws=null, uid=1000, pid={pid}',
        'release:lock={num}, flg=0x0, tag="RILJ_ACK_WL", name=com.android.phone", ws=null, uid=1001, pid={pid}',
        "getRunningAppProcesses: caller {pid} does not hold REAL_GET_TASKS; limiting output",
        "Start proc {pid}:com.{word}.app/u0a{num} for service com.{word}.app/.CoreService",
        "printFreezingDisplayLogsopening app wtoken = AppWindowToken{{{hex} token=Token{{{hex}}}}}, allDrawn= false, startingDisplayed =  false, startingMoved =  false, isRelaunching =  false",
        "Screen frozen for +{ms}ms due to Window{{{hex} u0 {word}}}",
        "setSystemUiVisibility vis={hex} mask=0xffffffff oldVal={hex} newVal={hex} diff={hex}",
        "mShowingLockscreen=true mShowingDream=false",
        "interceptKeyBeforeQueueing: key {num} , result : {small}",
        "Set wifi state {small}",
        "Skipping AppWindowToken{{{hex} token=Token{{{hex}}}}} -- going to hide",
        "cancelNotification,index:{small}",
    ],
    "healthapp": [
        "Step_LSC|onStandStepChanged {num}",
        "Step_LSC|onExtend:{num} {small} {small} {small}",
        "Step_StandReportReceiver|onReceive action: android.intent.action.SCREEN_ON",
        "Step_StandReportReceiver|onReceive action: android.intent.action.SCREEN_OFF",
        "Step_SPUtils|setTodayTotalDetailSteps={num}##{num}##{num}##{num}##{num}##{num}",
        "Step_StandStepCounter|flush sensor data",
        "HiH_HiHealthDataInsertStore|saveHealthDetailData() deviceID={small} size={small}",
        "HiH_HiSyncUtil|isCloudVersionRight cloudVersion={small}",
        "Step_ExtSDM|calculateCaloriesWithCache totalCalories={num}",
        "Step_ExtSDM|calculateAltitudeWithCache totalAltitude={small}",
        "HiH_DataStatManager|onReceive action={word}",
        "Step_SPUtils|getTodayTotalDetailSteps = {num}##{num}##{num}",
    ],
    "bgl": [
        "instruction cache parity error corrected",
        "generating core.{num}",
        "{num} double-hummer alignment exceptions",
        "CE sym {small}, at {hex}, mask {hex}",
        "ciod: failed to read message prefix on control stream (CioStream socket to {ip}:{port}",
        "ciod: Error loading {path}: invalid or missing program image, No such file or directory",
        "data TLB error interrupt",
        "machine check interrupt (bit=0x1d): L2 dcache unit data parity error",
        "total of {num} ddr error(s) detected and corrected",
        "Lustre mount FAILED : bglio{num} : block_id : location",
        "rts: kernel terminated for reason {num}",
        "ddr: activating redundant bit steering: rank={small} symbol={small}",
        "ciod: LOGIN chdir({path}) failed: No such file or directory",
    ],
    "windows": [
        "Loaded Servicing Stack v6.1.7601.{num} with Core: C:\\Windows\\winsxs\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_6.1.7601.{num}_none_681aa442f6fed7f0\\cbscore.dll",
        "Session: {num}_{num} initialized by client WindowsUpdateAgent.",
        "Read out cached package applicability for package: Package_for_KB{num}~31bf3856ad364e35~amd64~~6.1.1.{small}, ApplicableState: {small}, CurrentState:{small}",
        "Warning: Unrecognized packageExtended attribute.",
        "Expecting attribute name [HRESULT = 0x800f080d - CBS_E_MANIFEST_INVALID_ITEM]",
        "Failed to get next element [HRESULT = 0x800f080d - CBS_E_MANIFEST_INVALID_ITEM]",
        "Starting TrustedInstaller initialization.",
        "Ending TrustedInstaller initialization.",
        "SQM: Initializing online with Windows opt-in: False",
        "SQM: Cleaning up report files older than {small} days.",
        "Scavenge: Starts",
        "Scavenge: Completes, disposition: {small}",
        "Trusted Installer is shutting down because: SHUTDOWN_REASON_AUTOSTOP",
    ],
}


def _fill(template: str, r: random.Random) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: FILLERS[m.group(1)](r), template)


def build(name: str, templates: list[str], seed: int = 0) -> list[dict[str, str]]:
    """SIZE messages, templates drawn with Zipf-like weights so some are rare."""
    r = random.Random(f"{name}-{seed}")
    order = templates[:]
    r.shuffle(order)
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(order))]
    picks = r.choices(order, weights, k=SIZE)
    return [{"message": _fill(t, r), "template": t} for t in picks]


def main() -> None:
    for name, templates in SETS.items():
        with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as out:
            for row in build(name, templates):
                out.write(json.dumps(row) + "\n")
        print(f"{name}: {SIZE} messages, {len(templates)} templates")


if __name__ == "__main__":
    main()
