echo '{"architectures": ["GPT2LMHeadModel"], "n_embd": 64}' >c.json
ft-train init --config c.json -o m
echo "status $?"
echo '{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}' >d.json
ft-train init --config d.json -o m
echo "status $?"
echo '{"architectures": ["LlamaForCausalLM"], "hidden_size": 64,' >e.json
ft-train init --config e.json -o m
echo "status $?"
ls
