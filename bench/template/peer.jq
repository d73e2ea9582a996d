# jq peer for bench/template/run: the CrossWOZ hotel prompt format of
# examples/crosswoz/hotel.jinja as a jq program, emitting ft-template's sample
# shape {"id", "group", "segments": [{"text", "train", "template"}]}.
# Run as: jq -c -f peer.jq FILE
#
# The one difference, by necessity: jq's tojson has no indent, so the search
# arguments and return records are embedded as compact JSON ({"a":1}) where
# the recipe wants json.dumps(indent=4); jq also prints 4.0 as 4. Everything
# else (rounds, roles, flags, segment boundaries) is the same.

def piece(text; train; template): {text: text, train: train, template: template};

# Merge neighbouring pieces with the same flags, drop empty ones.
def merge:
  reduce (.[] | select(.text != "")) as $p ([];
    if length > 0 and .[-1].train == $p.train and .[-1].template == $p.template
    then .[-1].text += $p.text
    else . + [$p] end);

. as $rec
| reduce $rec.dialog[] as $t ({round: 0, pieces: []};
    (if $t.role == "user" or $t.role == "return"
     then .pieces += [piece("[Round \(.round)]\n\n"; false; true)] | .round += 1
     else . end)
    | if $t.role == "user" then
        .pieces += [piece("user: "; false; true), piece($t.content; false; false),
                    piece("\n\n"; false; true)]
      elif $t.role == "search" then
        .pieces += [piece("search:\n"; true; true),
                    piece($t.arguments | with_entries(select(.value != null)) | tojson; true; false),
                    piece("</s>"; true; true), piece("\n\n"; false; true)]
      elif $t.role == "return" then
        .pieces += [piece("return:\n"; false; true), piece($t.records | tojson; false; false),
                    piece("\n\n"; false; true)]
      elif $t.role == "assistant" then
        .pieces += [piece("assistant: "; true; true), piece($t.content; true; false),
                    piece("</s>"; true; true), piece("\n\n"; false; true)]
      else error("unknown turn role: \($t.role)") end)
| {id: $rec.id, group: ($rec.group // $rec.id), segments: (.pieces | merge)}
