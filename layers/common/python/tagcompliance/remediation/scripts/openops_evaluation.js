const RULES = JSON.parse(JSON.stringify(__RULES__));

function resourceType(arn) {
  const parts = String(arn).split(':');
  if (parts.length < 6 || parts[0] !== 'arn') return null;
  const resource = parts.slice(5).join(':');
  let fallback = null;
  for (const [type, spec] of Object.entries(RULES.types)) {
    if (spec.service !== parts[2]) continue;
    if (spec.prefix === null) fallback = type;
    else if (resource.startsWith(spec.prefix + spec.separator)) return type;
  }
  return fallback;
}

function check(type, tags) {
  const problems = [];
  const missing = [];
  const lowered = new Map();
  for (const key of Object.keys(tags)) lowered.set(key.toLowerCase(), key);
  for (const name of RULES.types[type].required) {
    const rule = RULES.rules[name];
    const value = tags[name];
    if (value === undefined) {
      const actual = lowered.get(name.toLowerCase());
      if (actual !== undefined && tags[actual].trim() !== '') {
        problems.push('wrong_key_case ' + name + ' (found ' + actual + ')');
      } else {
        problems.push('missing_tag ' + name);
        missing.push(name);
      }
    } else if (value.trim() === '') {
      problems.push('missing_tag ' + name + ' (empty value)');
      missing.push(name);
    } else if (
      rule.allowed !== null &&
      !rule.allowed.includes(value) &&
      !(rule.allowedPattern !== null && new RegExp(rule.allowedPattern).test(value))
    ) {
      problems.push('invalid_value ' + name + '=' + value);
    } else if (rule.pattern !== null && !new RegExp('^(?:' + rule.pattern + ')$').test(value)) {
      problems.push('invalid_format ' + name + '=' + value);
    }
  }
  for (const key of RULES.prohibited) {
    if (Object.prototype.hasOwnProperty.call(tags, key)) problems.push('prohibited_tag ' + key);
  }
  return { problems, missing };
}

export const code = async (inputs) => {
  const scan = typeof inputs.scan === 'string' ? JSON.parse(inputs.scan) : inputs.scan;
  const mappings = (scan && scan.ResourceTagMappingList) || [];
  let scanned = 0;
  let compliant = 0;
  const noncompliant = [];
  const groups = new Map();
  for (const mapping of mappings) {
    const arn = mapping.ResourceARN;
    const type = resourceType(arn);
    if (type === null) continue;
    if (RULES.types[type].required.length === 0 && RULES.prohibited.length === 0) continue;
    const tags = Object.create(null);
    for (const tag of mapping.Tags || []) tags[tag.Key] = tag.Value == null ? '' : String(tag.Value);
    scanned += 1;
    const result = check(type, tags);
    if (result.problems.length === 0) {
      compliant += 1;
      continue;
    }
    noncompliant.push({ arn: arn, type: type, problems: result.problems });
    if (RULES.tagValues !== null) {
      const keys = result.missing.filter((key) => Object.prototype.hasOwnProperty.call(RULES.tagValues, key));
      if (keys.length > 0) {
        const parts = arn.split(':');
        const group = JSON.stringify([parts[4], parts[3], keys.sort()]);
        if (!groups.has(group)) groups.set(group, { keys: keys, arns: [] });
        groups.get(group).arns.push(arn);
      }
    }
  }
  const batches = [];
  for (const group of groups.values()) {
    const tags = Object.create(null);
    for (const key of group.keys) tags[key] = RULES.tagValues[key];
    for (let i = 0; i < group.arns.length; i += RULES.batchLimit) {
      batches.push({ arns: group.arns.slice(i, i + RULES.batchLimit), tags: tags });
    }
  }
  const score = scanned === 0 ? 1 : Math.round((compliant / scanned) * 10000) / 10000;
  const lines = [
    'Tag compliance score: ' + (score * 100).toFixed(1) + '% (' + compliant + ' of ' + scanned +
      ' resources compliant, ' + noncompliant.length + ' non-compliant).',
  ];
  if (scanned === 0) lines.push('No resource of the checked types was returned by the tagging API.');
  for (const item of noncompliant.slice(0, RULES.reportLimit)) {
    lines.push('- ' + item.arn + ': ' + item.problems.join('; '));
  }
  if (noncompliant.length > RULES.reportLimit) {
    lines.push('... and ' + (noncompliant.length - RULES.reportLimit) + ' more.');
  }
  return {
    score: score,
    scanned: scanned,
    compliant: compliant,
    noncompliantCount: noncompliant.length,
    noncompliant: noncompliant,
    batches: batches,
    summary: lines.join('\n'),
  };
};
