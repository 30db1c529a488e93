// A matrix-js-sdk client syncing from Parley with sliding sync (MSC4186),
// driven by syncapi's TestSlidingSyncMatrixJSSDK. It reads its parameters
// from the environment, prints "ready" once the room is rendered from the
// first responses, then waits for a live message, prints "done" and exits.
import * as sdk from "matrix-js-sdk";
import { SlidingSync } from "matrix-js-sdk/lib/sliding-sync.js";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");
const env = process.env;
const fail = (msg) => { console.log("error " + msg); process.exit(1); };
setTimeout(() => fail("timed out"), 45000);

const client = sdk.createClient({
  baseUrl: env.PARLEY_URL, accessToken: env.PARLEY_TOKEN,
  userId: env.PARLEY_USER, deviceId: env.PARLEY_DEVICE,
});
const lists = new Map([["all", {
  ranges: [[0, 19]], timeline_limit: 10,
  required_state: [["m.room.name", ""], ["m.room.create", ""], ["m.room.member", "$LAZY"]],
}]]);
const slidingSync = new SlidingSync(env.PARLEY_URL, lists,
  { timeline_limit: 10, required_state: [["*", "*"]] }, client, 5000);

const bodies = (room) => room.getLiveTimeline().getEvents()
  .filter((e) => e.getType() === "m.room.message").map((e) => e.getContent().body);

let ready = false;
const check = () => {
  const room = client.getRoom(env.PARLEY_ROOM);
  if (!room) return;
  const got = bodies(room);
  if (!ready && room.name === env.PARLEY_ROOM_NAME && got.includes(env.PARLEY_FIRST) &&
      slidingSync.getListData("all")?.joinedCount === Number(env.PARLEY_COUNT)) {
    ready = true;
    console.log("ready " + JSON.stringify({ name: room.name, bodies: got }));
  }
  if (ready && got.includes(env.PARLEY_LIVE)) {
    console.log("done " + JSON.stringify({ bodies: got, members: room.getJoinedMemberCount() }));
    slidingSync.stop();
    client.stopClient();
    process.exit(0);
  }
};
client.on(sdk.RoomEvent.Timeline, check);
client.on(sdk.RoomEvent.Name, check);
slidingSync.on("SlidingSync.Lifecycle", (state, resp, err) => {
  if (err) fail("sync error " + JSON.stringify(err));
  check();
});
await client.startClient({ slidingSync });
