/*
 * The status page's script (docs/http-api.md, "The status page").
 *
 * Every few seconds it reads GET /v1/overview (public: groups, their
 * history, hosts) and, when an admin token was given, GET /v1/groups,
 * /v1/hosts, /v1/instances and the recent decisions (/v1/events), and
 * redraws the tables and the plots (SVG built here). Data from the daemon
 * goes into the page only as text (textContent, attribute values), never
 * as markup. The token lives in this tab's sessionStorage and goes only
 * to this origin, as "Authorization: Bearer"; a token the daemon refuses
 * is forgotten at once, so the page never runs into the daemon's limit
 * on failed authentications.
 */
'use strict';
(function () {
	const REFRESH_MS = 5000;
	const TOKEN_KEY = 'va-admin-token';
	const SVGNS = 'http://www.w3.org/2000/svg';
	const UNITS = {
		cpu: '%', memory: '%', disk_iops: ' op/s', disk_bytes: ' B/s',
		net_bytes: ' B/s',
	};
	const $ = (id) => document.getElementById(id);
	/* Instance rows shown until "Show all": laying out a thousand takes
	 * longer than the whole page's first frame should (bench/README.md). */
	const INSTANCE_ROWS = 100;

	let refreshes = 0;
	let timer = null;
	let running = false;
	let again = false;      /* a refresh was asked for while one ran */
	let pending = '';       /* a token typed in, not tried yet */
	let showAll = false;    /* every instance row, not INSTANCE_ROWS */
	let lastAdmin = null;   /* the last admin data, for the filter */

	function token() {
		try {
			return sessionStorage.getItem(TOKEN_KEY) || '';
		} catch (e) {
			return '';
		}
	}

	function setToken(t) {
		try {
			if (t)
				sessionStorage.setItem(TOKEN_KEY, t);
			else
				sessionStorage.removeItem(TOKEN_KEY);
		} catch (e) {
			/* storage disabled: the token is not kept */
		}
	}

	class HttpError extends Error {
		constructor(status, text) {
			super(text);
			this.status = status;
		}
	}

	async function call(method, path, admin, body, tok) {
		const headers = {};
		const init = { method: method, headers: headers, cache: 'no-store',
			       credentials: 'omit', redirect: 'error' };
		if (admin)
			headers.Authorization = 'Bearer ' + (tok || token());
		if (body !== undefined) {
			headers['Content-Type'] = 'application/json';
			init.body = JSON.stringify(body);
		}
		const r = await fetch(path, init);
		let data = null;
		try {
			data = await r.json();
		} catch (e) {
			data = null;
		}
		if (!r.ok)
			throw new HttpError(r.status, (data && data.error) ? data.error
								  : r.statusText);
		return data;
	}

	/* ---- DOM helpers: text only ---------------------------------- */

	function el(tag, text, cls) {
		const e = document.createElement(tag);
		if (text !== undefined && text !== null)
			e.textContent = String(text);
		if (cls)
			e.className = cls;
		return e;
	}

	function td(content, cls) {
		if (content instanceof Node) {
			const c = el('td', null, cls);
			c.appendChild(content);
			return c;
		}
		return el('td', content, cls);
	}

	function svg(tag, attrs) {
		const e = document.createElementNS(SVGNS, tag);
		for (const k in attrs)
			e.setAttribute(k, String(attrs[k]));
		return e;
	}

	function pad(n) {
		return n < 10 ? '0' + n : String(n);
	}

	function clock(ms) {
		if (!ms)
			return '-';
		const d = new Date(ms);
		return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' +
		       pad(d.getDate()) + ' ' + pad(d.getHours()) + ':' +
		       pad(d.getMinutes()) + ':' + pad(d.getSeconds());
	}

	function bytes(n) {
		if (n === undefined || n === null)
			return '-';
		const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
		let i = 0;
		while (n >= 1024 && i < u.length - 1) {
			n /= 1024;
			i++;
		}
		return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
	}

	function num(v, metric) {
		if (v === undefined || v === null)
			return '-';
		const u = UNITS[metric] || '';
		if (Math.abs(v) >= 1e6)
			return (v / 1e6).toFixed(1) + 'M' + u;
		if (Math.abs(v) >= 1e3)
			return (v / 1e3).toFixed(1) + 'k' + u;
		return (Math.round(v * 10) / 10) + u;
	}

	function span(seconds) {
		if (seconds >= 3600 && seconds % 3600 === 0)
			return (seconds / 3600) + ' h';
		if (seconds >= 60)
			return Math.round(seconds / 60) + ' min';
		return seconds + ' s';
	}

	/* ---- plots --------------------------------------------------- */

	const W = 640, H = 170, L = 44, R = 8, T = 22, B = 22;

	/*
	 * One plot: series [{name, cls, values, step}] over times, x from
	 * t0 to t1 (ms), y from 0 to the largest value. Missing values
	 * (null) break a line. The svg carries data-points: how many values
	 * are drawn.
	 */
	function plot(title, times, t0, t1, series, integer) {
		const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'plot',
				       role: 'img' });
		let ymax = 0, drawn = 0;
		for (const se of series)
			for (const v of se.values)
				if (v !== null && v > ymax)
					ymax = v;
		if (integer) {
			/* even, so that the middle line is a whole number */
			ymax = Math.max(2, Math.ceil(ymax * 1.1));
			ymax += ymax % 2;
		} else {
			ymax = ymax > 0 ? ymax * 1.15 : 1;
		}
		const span_ms = Math.max(1, t1 - t0);
		const x = (t) => L + (W - L - R) * Math.min(1, Math.max(0, (t - t0) / span_ms));
		const y = (v) => T + (H - T - B) * (1 - v / ymax);

		const label = svg('title', {});
		label.textContent = title;
		s.appendChild(label);
		const head = svg('text', { x: L, y: 14, class: 'plot-title' });
		head.textContent = title;
		s.appendChild(head);
		s.appendChild(svg('rect', { x: L, y: T, width: W - L - R,
					    height: H - T - B, class: 'frame' }));
		for (const [v, cls] of [[0, 'axis'], [ymax / 2, 'grid'], [ymax, 'grid']]) {
			s.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v),
						    class: cls }));
			const t = svg('text', { x: L - 4, y: y(v) + 4, class: 'tick y' });
			t.textContent = integer ? String(Math.round(v)) : num(v);
			s.appendChild(t);
		}
		const left = svg('text', { x: L, y: H - 6, class: 'tick' });
		left.textContent = '-' + span(Math.round((t1 - t0) / 1000));
		s.appendChild(left);
		const right = svg('text', { x: W - R, y: H - 6, class: 'tick end' });
		right.textContent = 'now';
		s.appendChild(right);

		let lx = W - R;
		for (let k = series.length - 1; k >= 0; k--) {
			const se = series[k];
			const t = svg('text', { x: lx, y: 14, class: 'legend end ' + se.cls });
			t.textContent = se.name;
			s.appendChild(t);
			lx -= 10 + 7 * se.name.length;
		}
		for (const se of series) {
			let pts = [];
			const flush = () => {
				if (pts.length) {
					const line = svg('polyline', { points: pts.join(' '),
								       class: 'line ' + se.cls });
					line.setAttribute('data-series', se.name);
					s.appendChild(line);
				}
				pts = [];
			};
			for (let i = 0; i < times.length; i++) {
				const v = se.values[i];
				if (v === null || v === undefined || times[i] < t0) {
					flush();
					continue;
				}
				if (se.step && pts.length)
					pts.push(x(times[i]).toFixed(1) + ',' + y(se.values[i - 1]).toFixed(1));
				pts.push(x(times[i]).toFixed(1) + ',' + y(v).toFixed(1));
				drawn++;
			}
			flush();
		}
		s.setAttribute('data-points', String(drawn));
		if (!drawn) {
			const t = svg('text', { x: (L + W - R) / 2, y: (T + H - B) / 2,
						class: 'empty' });
			t.textContent = 'no data in the window yet';
			s.appendChild(t);
		}
		return s;
	}

	function groupPlots(g, now) {
		const fig = el('figure', null, 'group-plots');
		fig.setAttribute('data-group', g.name);
		fig.appendChild(el('figcaption', g.name + ': a point per plan (every ' +
				   g.interval_s + ' s), kept for ' + span(Math.round(g.window_s))));
		const h = g.history;
		/* the window, or less while the history is shorter (a recent
		 * start), but at least a minute */
		const first = h.time.length ? h.time[0] : now;
		const t0 = Math.max(now - g.window_s * 1000, Math.min(first, now - 60000));
		const sizes = [
			{ name: 'desired', cls: 'desired', values: h.desired, step: true },
			{ name: 'current', cls: 'current', values: h.current, step: true },
			{ name: 'ready', cls: 'ready', values: h.ready, step: true },
		];
		/* predictive scaling's floor (also in forecast_only) */
		if (h.forecast)
			sizes.push({ name: 'forecast', cls: 'forecast', values: h.forecast,
				     step: true });
		fig.appendChild(plot(g.name + ': instances', h.time, t0, now, sizes, true));
		for (const m of Object.keys(h.metrics)) {
			const series = [{ name: m, cls: 'metric', values: h.metrics[m] }];
			if (h.targets[m])
				series.push({ name: 'target', cls: 'target', values: h.targets[m],
					      step: true });
			fig.appendChild(plot(g.name + ': ' + m + (UNITS[m] ? ' (' + UNITS[m].trim() + ')' : ''),
					     h.time, t0, now, series, false));
		}
		return fig;
	}

	/* ---- tables -------------------------------------------------- */

	function metricsText(g) {
		const parts = [];
		const names = new Set(Object.keys(g.metrics).concat(Object.keys(g.targets)));
		for (const m of names) {
			let s = m + ' ' + num(g.metrics[m], m);
			if (g.targets[m])
				s += ' (' + num(g.targets[m], m) + ')';
			parts.push(s);
		}
		return parts.length ? parts.join(', ') : '-';
	}

	function actions(g) {
		const box = el('div', null, 'actions');
		const input = el('input');
		input.type = 'number';
		input.min = String(g.min);
		input.max = String(g.max);
		input.value = String(g.desired);
		input.setAttribute('aria-label', 'desired size of ' + g.name);
		const scale = el('button', 'Scale', 'scale');
		scale.type = 'button';
		scale.addEventListener('click', () => {
			const n = Number(input.value);
			if (!Number.isInteger(n) || n < 0) {
				say('scale ' + g.name + ': not a whole number: ' + input.value, true);
				return;
			}
			act('PUT', '/v1/groups/' + encodeURIComponent(g.name) + '/desired',
			    { desired: n }, (r) => 'scale ' + g.name + ': desired ' + r.desired +
			    (r.note && r.note !== 'ok' ? ' (' + r.note + ')' : ''));
		});
		const pause = el('button', g.paused ? 'Resume' : 'Pause', 'pause');
		pause.type = 'button';
		pause.addEventListener('click', () => {
			const what = g.paused ? 'resume' : 'pause';
			act('POST', '/v1/groups/' + encodeURIComponent(g.name) + '/' + what,
			    undefined, () => what + ' ' + g.name + ': done');
		});
		box.append(input, scale, pause);
		return box;
	}

	/* the group's state; an instance refresh in progress (admin) */
	function stateText(g, r) {
		let s = g.paused ? 'paused' : 'scaling';
		if (r && ['running', 'paused', 'rolling_back'].includes(r.state))
			s += ', refresh ' + r.state.replace('_', ' ') + ' ' +
				(r.total - r.remaining) + '/' + r.total;
		return s;
	}

	function renderGroups(ov, admin) {
		const body = $('groups').tBodies[0];
		/* an operator typing a size: leave the rows alone this time */
		if (body.contains(document.activeElement))
			return;
		const last = new Map(), refresh = new Map();
		if (admin && admin.groups)
			for (const g of admin.groups.groups) {
				last.set(g.name, g.last_decision);
				if (g.refresh)
					refresh.set(g.name, g.refresh);
			}
		const f = document.createDocumentFragment();
		for (const g of ov.groups) {
			const tr = el('tr');
			tr.setAttribute('data-group', g.name);
			tr.append(td(g.name, 'name'), td(g.min), td(g.max), td(g.desired),
				  td(g.current), td(g.ready),
				  td(stateText(g, refresh.get(g.name)), g.paused ? 'warn' : ''),
				  td(metricsText(g)));
			if (admin) {
				tr.append(td(last.get(g.name) || '-', 'admin reason'),
					  td(actions(g), 'admin'));
			}
			f.appendChild(tr);
		}
		if (!ov.groups.length) {
			const tr = el('tr');
			const c = td('no groups configured', 'note');
			c.colSpan = 10;
			tr.appendChild(c);
			f.appendChild(tr);
		}
		body.replaceChildren(f);
	}

	function renderPlots(ov) {
		const f = document.createDocumentFragment();
		for (const g of ov.groups)
			f.appendChild(groupPlots(g, ov.time));
		$('plots').replaceChildren(f);
	}

	function renderHosts(ov, admin) {
		const why = new Map();
		if (admin && admin.hosts)
			for (const h of admin.hosts.hosts)
				why.set(h.name, h.reason);
		const f = document.createDocumentFragment();
		for (const h of ov.hosts) {
			const tr = el('tr');
			tr.setAttribute('data-host', h.name);
			tr.append(td(h.name, 'name'),
				  td(h.state, h.state === 'up' ? '' : 'warn'),
				  td(h.since ? clock(h.since) : 'start'),
				  td(h.cpus === undefined ? '-' : h.cpus),
				  td(h.vcpus_allocated === undefined ? '-' : h.vcpus_allocated),
				  td(bytes(h.memory_bytes)), td(bytes(h.free_memory_bytes)),
				  td(bytes(h.memory_allocated_bytes)),
				  td(h.domains === undefined ? '-' : h.domains));
			if (admin)
				tr.appendChild(td(why.get(h.name) || '-', 'admin reason'));
			f.appendChild(tr);
		}
		$('hosts').tBodies[0].replaceChildren(f);
	}

	function renderDecisions(admin) {
		const body = $('decisions').tBodies[0];
		if (!admin) {
			$('decisions-note').textContent =
				'The decisions and their reasons need the admin token.';
			body.replaceChildren();
			return;
		}
		const ev = admin.events.events.slice().reverse();
		$('decisions-note').textContent = ev.length
			? 'The last ' + ev.length + ', newest first (virt-autoscaler explain GROUP).'
			: 'No decision recorded yet.';
		const f = document.createDocumentFragment();
		for (const e of ev) {
			const tr = el('tr');
			tr.append(td(clock(e.time)), td(e.group || '-', 'name'),
				  td(e.message, 'reason'));
			f.appendChild(tr);
		}
		body.replaceChildren(f);
	}

	function renderInstances(admin) {
		const body = $('instances').tBodies[0];
		if (!admin) {
			$('instances-note').textContent = 'The instances need the admin token.';
			body.replaceChildren();
			return;
		}
		const all = admin.instances.instances;
		const states = new Map();
		for (const i of all)
			states.set(i.state, (states.get(i.state) || 0) + 1);
		const parts = [];
		for (const [s, n] of states)
			parts.push(n + ' ' + s);
		const q = $('instances-filter').value.trim().toLowerCase();
		const match = q ? all.filter((i) => [i.id, i.group, i.host, i.domain, i.state]
			.some((v) => v && v.toLowerCase().includes(q))) : all;
		const list = showAll ? match : match.slice(0, INSTANCE_ROWS);
		let note = all.length + ' instances' + (parts.length ? ': ' + parts.join(', ') : '');
		if (q)
			note += '; ' + match.length + ' match';
		if (list.length < match.length)
			note += '; showing the first ' + list.length;
		$('instances-note').textContent = note + '.';
		$('instances-all').textContent = showAll ? 'Show the first ' + INSTANCE_ROWS
							 : 'Show all';
		$('instances-all').hidden = match.length <= INSTANCE_ROWS;
		/*
		 * A thousand rows: the rows already there are kept and only the
		 * text that changed is set, so a refresh that changes nothing
		 * costs no layout; new rows are clones of one.
		 */
		const proto = el('tr');
		proto.append(td('', 'id'), td(''), td(''), td(''), td(''), td(''), td(''), td(''));
		const rows = body.rows;
		const f = document.createDocumentFragment();
		for (let k = 0; k < list.length; k++) {
			const i = list[k];
			const tr = k < rows.length ? rows[k] : f.appendChild(proto.cloneNode(true));
			const text = [i.id, i.group, i.host || '-', i.domain || '-', i.state,
				      clock(i.created), clock(i.last_heartbeat), i.busy ? 'yes' : '-'];
			if (tr.getAttribute('data-instance') !== i.id)
				tr.setAttribute('data-instance', i.id);
			for (let c = 0; c < text.length; c++)
				if (tr.cells[c].textContent !== text[c])
					tr.cells[c].textContent = text[c];
			const cls = i.state === 'ready' ? '' : 'warn';
			if (tr.cells[4].className !== cls)
				tr.cells[4].className = cls;
		}
		while (rows.length > list.length)
			body.deleteRow(-1);
		body.appendChild(f);
	}

	/* ---- the loop ------------------------------------------------ */

	function say(text, bad) {
		const m = $('message');
		m.textContent = text;
		m.className = bad ? 'note bad' : 'note';
	}

	function showAccess(admin) {
		document.body.classList.toggle('is-admin', !!admin);
		$('access').textContent = admin
			? 'Admin view: the token is kept in this tab only (sessionStorage) and sent to this daemon only.'
			: 'Public view: groups, their history and hosts (what /metrics shows anyone). ' +
			  'Enter the admin token for instances, decisions, hosts\u2019 reasons and actions.';
	}

	async function act(method, path, body, done) {
		try {
			const r = await call(method, path, true, body);
			say(done(r), false);
		} catch (e) {
			if (e.status === 401 || e.status === 429)
				setToken('');
			say((e.status ? e.status + ': ' : '') + e.message, true);
		}
		refresh();
	}

	/*
	 * A token just typed in is tried with one request first, so that a
	 * wrong one fails once, not four times; once accepted it is kept
	 * (sessionStorage) and the page asks for everything at once.
	 */
	async function loadAdmin() {
		let groups = null;
		if (pending) {
			const t = pending;
			groups = await call('GET', '/v1/groups', true, undefined, t);
			setToken(t);
			pending = '';
		}
		const [g, hosts, events, instances] = await Promise.all([
			groups ? Promise.resolve(groups) : call('GET', '/v1/groups', true),
			call('GET', '/v1/hosts', true),
			call('GET', '/v1/events?kind=decision&limit=20', true),
			call('GET', '/v1/instances', true),
		]);
		return { groups: g, hosts: hosts, events: events, instances: instances };
	}

	async function refresh() {
		if (running) {
			again = true;
			return;
		}
		running = true;
		again = false;
		clearTimeout(timer);
		try {
			const want = pending !== '' || token() !== '';
			const [ov, admin] = await Promise.all([
				call('GET', '/v1/overview', false),
				want ? loadAdmin().catch((e) => e) : Promise.resolve(null),
			]);
			let adm = admin;
			if (adm instanceof Error) {
				if (adm.status === 401 || adm.status === 403 || adm.status === 429) {
					setToken('');
					pending = '';
					say('The admin token was not accepted (' + adm.status + ': ' +
					    adm.message + '): forgotten. Showing public data only.', true);
				} else {
					say('Admin data: ' + (adm.status ? adm.status + ': ' : '') +
					    adm.message, true);
				}
				adm = null;
			}
			lastAdmin = adm;
			showAccess(adm);
			renderGroups(ov, adm);
			renderPlots(ov);
			renderHosts(ov, adm);
			renderDecisions(adm);
			renderInstances(adm);
			$('updated').textContent = 'Updated ' + clock(ov.time) +
				'; refreshed every ' + REFRESH_MS / 1000 + ' s.';
			refreshes++;
			document.documentElement.setAttribute('data-refreshes', String(refreshes));
			document.documentElement.setAttribute('data-view', adm ? 'admin' : 'public');
			if (refreshes === 1) {
				/* once the frame that shows the data is painted (a
				 * task after the animation frame): bench/ui reads it */
				requestAnimationFrame(() => setTimeout(() => {
					performance.mark('va-first-render');
					document.documentElement.setAttribute('data-first-render-ms',
									       performance.now().toFixed(1));
				}, 0));
			}
		} catch (e) {
			$('updated').textContent = 'Cannot reach the daemon (' +
				(e.status ? e.status + ': ' : '') + e.message + '); retrying.';
		} finally {
			running = false;
			timer = setTimeout(tick, again ? 0 : REFRESH_MS);
		}
	}

	function tick() {
		if (document.hidden)
			timer = setTimeout(tick, REFRESH_MS);
		else
			refresh();
	}

	function start() {
		$('token-form').addEventListener('submit', (e) => {
			e.preventDefault();
			const t = $('token').value.trim();
			$('token').value = '';
			setToken('');
			pending = t;
			say(t ? 'Token set.' : 'No token given.', !t);
			refresh();
		});
		$('token-forget').addEventListener('click', () => {
			setToken('');
			pending = '';
			say('Token forgotten.', false);
			refresh();
		});
		$('instances-filter').addEventListener('input', () => renderInstances(lastAdmin));
		$('instances-all').addEventListener('click', () => {
			showAll = !showAll;
			renderInstances(lastAdmin);
		});
		document.addEventListener('visibilitychange', () => {
			if (!document.hidden)
				refresh();
		});
		refresh();
	}

	start();
})();
