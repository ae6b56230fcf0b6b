"""Analysis of a trained model's outputs, as arrays in and numbers or pictures out: fvae's
Fashion-MNIST classifier and its shipped weights (`classifier`), the sample-quality scores in
its features (`sample_scores`), latent samplers fitted to codes (`samplers`, with the networks
of two of them in `flows`), linear and k-NN probes of the codes (`probes`) and the pictures
(`plots`)."""
