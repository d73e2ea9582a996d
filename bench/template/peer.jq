# jq peer for bench/template/run: the CrossWOZ hotel prompt format of
# examples/crosswoz/hotel.jinja as a jq program, emitting ft-template's sample
# shape {"id", "group", "segments": [{"text", "train", "template"}]}.
# Run as: jq -c -f peer.jq FILE
#
# The one difference, by necessity: jq's tojson has no indent, so the search
# arguments and return records are embedded as compact JSON ({"a":1}) where
# the recipe wants json.dumps(indent=4, ensure_ascii=False); jq 1.6 also
# prints 4.0 as 4. Rounds, roles, trained flags and segment boundaries are
# ft-template's: the blank line after a turn joins the next turn's
# "[Round i]" and role prefix in one template segment, laid out in one pass
# like peer.py (an empty content string would leave an empty data segment;
# the hotel data has none).

def seg(text; train; template): {text: text, train: train, template: template};

def segments:
  foreach .dialog[] as $t ({round: 0, sep: ""};
      .lead = .sep
      | if $t.role == "user" or $t.role == "return"
        then .lead += "[Round \(.round)]\n\n" | .round += 1 else . end
      | .sep = "\n\n";
      .lead as $lead
      | if $t.role == "user" then
          seg($lead + "user: "; false; true), seg($t.content; false; false)
        elif $t.role == "return" then
          seg($lead + "return:\n"; false; true), seg($t.records | tojson; false; false)
        elif $t.role == "search" then
          (if $lead != "" then seg($lead; false; true) else empty end),
          seg("search:\n"; true; true),
          seg($t.arguments | with_entries(select(.value != null)) | tojson; true; false),
          seg("</s>"; true; true)
        elif $t.role == "assistant" then
          (if $lead != "" then seg($lead; false; true) else empty end),
          seg("assistant: "; true; true), seg($t.content; true; false), seg("</s>"; true; true)
        else error("unknown turn role: \($t.role)") end);

{id, group: (.group // .id),
 segments: ([segments] + (if (.dialog | length) > 0 then [seg("\n\n"; false; true)] else [] end))}
