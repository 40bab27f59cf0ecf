// The page's entry: hash routes (#/ = upload and job list, #/jobs/<id> = one job) and the API key dialog.

import { explain, onKeyNeeded } from "./api.js";
import { Home } from "./home.js";
import { JobView } from "./job.js";

const homeRoot = document.querySelector("#home");
const jobRoot = document.querySelector("#job");
const home = new Home(homeRoot, { onJob: (id) => (location.hash = `#/jobs/${id}`) });
const job = new JobView(jobRoot);
const notice = document.querySelector("#notice");

// The key dialog: asked when the server first answers 401, kept in sessionStorage by api.js.
const dialog = document.querySelector("#key-dialog");
onKeyNeeded(
  (rejected) =>
    new Promise((resolve) => {
      const form = dialog.querySelector("form");
      const input = form.elements.key;
      dialog.querySelector("#key-rejected").hidden = !rejected;
      input.value = "";
      const done = (value) => {
        form.removeEventListener("submit", submit);
        dialog.removeEventListener("cancel", cancel);
        dialog.close();
        resolve(value);
      };
      const submit = (event) => {
        event.preventDefault();
        done(input.value.trim() || null);
      };
      const cancel = (event) => {
        event.preventDefault();
        done(null);
      };
      form.addEventListener("submit", submit);
      dialog.addEventListener("cancel", cancel);
      dialog.showModal();
      input.focus();
    }),
);

function route() {
  const match = location.hash.match(/^#\/jobs\/([A-Za-z0-9_-]{1,64})$/);
  homeRoot.hidden = Boolean(match);
  jobRoot.hidden = !match;
  notice.hidden = true;
  if (match) {
    home.hide();
    job.show(match[1]);
    document.title = `Job ${match[1].slice(0, 8)} · dubgraph`;
  } else {
    job.hide();
    document.title = "dubgraph";
    home.show().catch((error) => {
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = "Try again";
      again.addEventListener("click", route);
      notice.replaceChildren(`${explain(error)} `, again);
      notice.hidden = false;
    });
  }
}

window.addEventListener("hashchange", route);
route();
